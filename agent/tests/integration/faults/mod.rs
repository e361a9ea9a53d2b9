//! Backends in trouble: targeted retry and fail-fast cases, and the full fault matrix.

mod matrix;
mod retries;
