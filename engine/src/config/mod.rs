//! Configuration: the validated model and the YAML loader that produces it.
//!
//! `load_file`/`load_str` turn YAML into a [`Config`], reporting every problem
//! found (not only the first) with its file, line, column and field path.

mod load;
pub mod model;
mod reader;
mod routes;

pub use load::{
    embedded_default, load_file, load_str, ConfigError, ConfigErrors, EMBEDDED_DEFAULT_YAML,
};
pub use model::*;
