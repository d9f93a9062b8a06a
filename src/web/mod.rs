//! Pages for people rather than programs.

pub mod unsubscribe;
