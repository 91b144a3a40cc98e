//! Events, features and the anomaly model.
