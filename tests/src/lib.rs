//! The local cloud the test suites run against.
//!
//! Every test gets an AWS of its own: [`LocalAws::start`] spawns a moto server
//! on a free loopback port and kills it when the handle is dropped, so tests
//! run in parallel without seeing each other's resources. [`FaultProxy`] sits
//! between a client and that server and injects throttling, server errors and
//! dropped connections at a set rate; in strict mode ([`StrictAws`]) it also
//! answers as real AWS does where moto is lenient, and every [`LocalAws`]
//! puts one in front of its moto server.

mod fault_proxy;
mod moto;
mod registry;
mod rie;
mod strict;

pub use fault_proxy::{FaultProxy, FaultRates, FaultStats, RequestMatch, ScriptedResponse};
pub use moto::{LocalAws, TEST_ACCOUNT, TEST_REGION, sdk_config_for};
pub use registry::{LocalRegistry, OCI_INDEX, OCI_MANIFEST, require_docker};
pub use rie::{EmulatorBuilder, INVOKE_PATH, LambdaEmulator, RIE_PATH, rie_path};
pub use strict::{Rule, StrictAws, StrictSettings};
