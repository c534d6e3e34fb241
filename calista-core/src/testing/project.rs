//! Whose test databases these are: the prefix of every database and file that
//! `calista::testing` makes, and the variable that names the test server. Several
//! projects share a server and a temporary folder without sharing (or cleaning up) each
//! other's databases.

use std::path::Path;

use crate::error::Error;
use crate::settings::AppNames;
use crate::url::{DatabaseUrl, PostgresUrl};

/// The variable read for the test server when the project's own is not set: one setting
/// for a machine whose projects all test on one server.
pub const FALLBACK_PG_URL_VARIABLE: &str = "CALISTA_TEST_PG_URL";
/// The server when neither variable is set.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The longest prefix: with the longest suffix a name gets, PostgreSQL's 63 bytes.
const MAX_PREFIX: usize = 12;

/// A project's test databases and files: what they are called, and where the server is.
///
/// From a crate's name (`#[calista::test]` passes its crate's `CARGO_PKG_NAME`, or its
/// `prefix = "…"`): `my-app` makes databases and files named `my_app_tpl_…`,
/// `my_app_spare_…` and `my_app_test_…`, and finds the server in `MY_APP_TEST_PG_URL`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TestProject {
    /// Lowercase ASCII letters, digits and `_`, at most [`MAX_PREFIX`] bytes.
    prefix: String,
    /// `MY_APP_TEST_PG_URL`.
    pg_url_variable: String,
}

impl TestProject {
    /// The project named `name`, usually a crate's name. The prefix is the name in lowercase
    /// with anything but ASCII letters and digits as `_`, cut to 12 characters; the server
    /// variable is the name's environment prefix (as [`AppNames`] makes it) and
    /// `_TEST_PG_URL`.
    pub fn new(name: &str) -> Self {
        let name = match name.trim() {
            "" => "calista",
            name => name,
        };
        // One rule for an application's names: its variables' prefix, in lowercase.
        let names = AppNames::new(name);
        Self {
            prefix: names
                .env_prefix
                .to_ascii_lowercase()
                .chars()
                .take(MAX_PREFIX)
                .collect(),
            pg_url_variable: names.env("TEST_PG_URL"),
        }
    }

    /// The project of the crate whose tests are running: its name as cargo gives it to a
    /// test process (`CARGO_PKG_NAME`), else `calista`.
    pub fn of_running_crate() -> Self {
        Self::new(&std::env::var("CARGO_PKG_NAME").unwrap_or_default())
    }

    /// The start of every database and file name: `my_app`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The variable that names the test server: `MY_APP_TEST_PG_URL`.
    pub fn pg_url_variable(&self) -> &str {
        &self.pg_url_variable
    }

    /// The test server: the project's variable, else [`FALLBACK_PG_URL_VARIABLE`], else
    /// [`DEFAULT_PG_URL`].
    pub fn server(&self) -> Result<PostgresUrl, Error> {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (from, text) = [self.pg_url_variable(), FALLBACK_PG_URL_VARIABLE]
            .into_iter()
            .find_map(|name| Some((name, set(name)?)))
            .unwrap_or(("the default", DEFAULT_PG_URL.to_owned()));
        match DatabaseUrl::parse(&text, Path::new(".")) {
            Ok(DatabaseUrl::Postgres(server)) => Ok(server),
            _ => Err(Error::TestServerUrl {
                from: from.to_owned(),
                variable: self.pg_url_variable().to_owned(),
                example: DEFAULT_PG_URL.to_owned(),
            }),
        }
    }

    /// How to point the tests at a server, for a failure to reach one.
    pub(super) fn server_hint(&self) -> String {
        let own = self.pg_url_variable();
        let fallback = if own == FALLBACK_PG_URL_VARIABLE {
            String::new()
        } else {
            format!("{FALLBACK_PG_URL_VARIABLE}, then ")
        };
        format!(
            "point {own} at a server where this role may create databases (without it: \
             {fallback}{DEFAULT_PG_URL})"
        )
    }

    /// A template: `my_app_tpl_<key>`.
    pub(super) fn template(&self, key: &str) -> String {
        format!("{}{TEMPLATE}{key}", self.prefix)
    }

    /// The start of the names of `key`'s spares: `my_app_spare_<16 of key>_`. Names stay
    /// within PostgreSQL's 63 bytes: the prefix, 16 characters of the key, and
    /// [`crate::scratch::unique_suffix`].
    pub(super) fn spare_prefix(&self, key: &str) -> String {
        format!("{}{SPARE}{}_", self.prefix, key.get(..16).unwrap_or(key))
    }

    /// The start of a test's own database or file: `my_app_test`.
    pub(super) fn test_name(&self) -> String {
        format!("{}_test", self.prefix)
    }

    /// A passing test's database, set aside to be dropped: `my_app_trash_<suffix>`.
    pub(super) fn trash(&self, suffix: &str) -> String {
        format!("{}{TRASH}{suffix}", self.prefix)
    }

    /// What a database or file name of this project's is (after the clean-up's rules), or
    /// `None` for anything else — another project's too, even one whose own prefix starts
    /// with this one: every kind's remainder is hex digits, digits and `_`, which no
    /// project's kind word (`tpl`, `spare`, `test`, `trash`) is.
    pub(super) fn kind(&self, name: &str) -> Option<Kind> {
        let rest = name.strip_prefix(&self.prefix)?;
        let plain = |text: &str| {
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'_')
        };
        if let Some(key) = rest.strip_prefix(TEMPLATE) {
            return plain(key).then(|| Kind::Template(key.to_owned()));
        }
        if let Some(spare) = rest.strip_prefix(SPARE) {
            return plain(spare).then_some(Kind::Spare);
        }
        if let Some(trash) = rest.strip_prefix(TRASH) {
            return plain(trash).then_some(Kind::Trash);
        }
        None
    }
}

impl Default for TestProject {
    /// [`TestProject::of_running_crate`].
    fn default() -> Self {
        Self::of_running_crate()
    }
}

/// What one of a project's names is, for the clean-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// A template, with its key (a file's without `.db`).
    Template(String),
    /// A spare copy of a template.
    Spare,
    /// A passing test's database, set aside to be dropped.
    Trash,
}

const TEMPLATE: &str = "_tpl_";
const SPARE: &str = "_spare_";
const TRASH: &str = "_trash_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crates_name_gives_the_prefix_and_the_server_variable() {
        for (name, prefix, variable) in [
            ("calista", "calista", "CALISTA_TEST_PG_URL"),
            ("my-app", "my_app", "MY_APP_TEST_PG_URL"),
            ("Shop", "shop", "SHOP_TEST_PG_URL"),
            (
                "a-very-long-crate-name",
                "a_very_long_",
                "A_VERY_LONG_CRATE_NAME_TEST_PG_URL",
            ),
            ("", "calista", "CALISTA_TEST_PG_URL"),
        ] {
            let project = TestProject::new(name);
            assert_eq!(project.prefix(), prefix, "{name}");
            assert_eq!(project.pg_url_variable(), variable, "{name}");
        }
    }

    #[test]
    fn the_clean_up_knows_its_own_names_and_no_other_projects() {
        let my = TestProject::new("my");
        let key = "0123456789abcdef01234567";
        assert_eq!(my.kind(&my.template(key)), Some(Kind::Template(key.into())));
        assert_eq!(
            my.kind(&format!("{}3_17_4096", my.spare_prefix(key))),
            Some(Kind::Spare)
        );
        assert_eq!(my.kind(&my.trash("3_17_4096")), Some(Kind::Trash));
        // A test's own database is kept (a failed test's), never cleaned up.
        assert_eq!(my.kind(&format!("{}_3_17_4096", my.test_name())), None);
        // Projects whose names start like this one's.
        for other in ["my_trash", "my_spare", "my_tpl", "my_trash_ab", "myapp"] {
            let other = TestProject::new(other);
            for name in [
                other.template(key),
                format!("{}1", other.spare_prefix(key)),
                other.trash("3_17_4096"),
                format!("{}_3_17_4096", other.test_name()),
            ] {
                assert_eq!(my.kind(&name), None, "{name}");
            }
        }
    }
}
