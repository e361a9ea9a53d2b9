//! Fuzzing on stable Rust.
//!
//! `cargo fuzz` needs a nightly toolchain (libFuzzer's sanitizer coverage), and this project
//! builds with stable Rust 1.95 only, so the targets here are driven by
//! [proptest](https://docs.rs/proptest) instead: property tests with very large case counts,
//! whose inputs are the seed corpora under `fuzz/corpus/<target>/` mutated byte- and
//! structure-wise ([`mutate`]), plus generated requests. A failing input is shrunk and written
//! to `fuzz/crashes/`, like a libFuzzer artifact; fixed crashes join the corpus, and
//! `tests/corpus.rs` replays every corpus file on every CI run.
//!
//! Each target has libFuzzer's shape, `fn(&[u8])`, and panics when an invariant breaks, so a
//! `fuzz_target!(|data| flyte_secret_fuzz::Target::Annotation.run(data))` wrapper is all a
//! nightly machine would need.
//!
//! | target | input | checks |
//! |---|---|---|
//! | `annotation` | an annotation value (Flyte base32 of the text format), also read as raw text | never panics; what decodes re-encodes to the same request; base32 of any text decodes exactly as the text parses; errors name the annotation |
//! | `plan` | a fetch plan (JSON) | never panics; an accepted plan re-parses to itself, and every target path is safe |
//! | `admission` | an AdmissionReview body, answered with one of three webhook configurations | never panics; the response is JSON with the request's uid; a patch applies to the object and gives a valid Pod whose agent plan the agent accepts; admitting the patched pod again changes nothing |
//! | `paths` | path-like bytes; `0xff` separates group, key, group_version, env_var, scope | never panics; whatever is accepted is a safe relative path below the mount; names and scopes round-trip |

pub mod corpus;
pub mod driver;
pub mod mutate;
pub mod seed;
pub mod targets;

pub use targets::Target;
