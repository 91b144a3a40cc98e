//! `[tags]`: the tags put on every resource, their keys and values.

use std::collections::BTreeMap;

use super::{Checker, RESERVED_TAG_KEYS};

pub(super) fn check_tags(tags: &BTreeMap<String, String>, checker: &mut Checker) {
    for (key, value) in tags {
        check_tag(checker, key, value);
    }
}

fn check_tag(checker: &mut Checker, key: &str, value: &str) {
    let path = ["tags", key];
    let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
    if key.is_empty() || key.chars().count() > 128 || !key.chars().all(allowed) {
        checker.key_problem(
            &path,
            format!("{key:?} is not a valid tag key (1-128 letters, digits, spaces and _.:/=+-@)"),
        );
    } else if key.to_ascii_lowercase().starts_with("aws:") {
        checker.key_problem(&path, "tag keys starting with \"aws:\" are reserved by AWS");
    } else if RESERVED_TAG_KEYS.contains(&key) {
        checker.key_problem(
            &path,
            format!("{key:?} is the controller's ownership tag and cannot be set"),
        );
    }
    if value.chars().count() > 256 || !value.chars().all(allowed) {
        checker.problem(
            &path,
            "a tag value is at most 256 letters, digits, spaces and _.:/=+-@",
        );
    }
}
