//! Settings: command-line flag, then environment, then `calista.toml`, then default.
