//! Runnable examples for multipeer; see `examples/`.
