//! The four targets. Each takes arbitrary bytes and panics when an invariant breaks.
//!
//! One module per target ([`annotation`], [`plan`], [`admission`], [`paths`]); the checks they
//! share (safe secret paths, one-line messages) live here.

use flyte_secret_spec::request::{MAX_COMPONENT_BYTES, MAX_COMPONENTS};

mod admission;
mod annotation;
mod paths;
mod plan;

pub use paths::request_rules;
pub use plan::check_plan;

use admission::admission_target;
use annotation::annotation_target;
use paths::paths_target;
use plan::plan_target;

/// A fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The annotation decoder: Flyte base32 + the protobuf text format.
    Annotation,
    /// The fetch-plan parser.
    Plan,
    /// The AdmissionReview handler, body in → response out.
    Admission,
    /// Path and name validation.
    Paths,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::Annotation,
        Target::Plan,
        Target::Admission,
        Target::Paths,
    ];

    /// The name used for directories and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Annotation => "annotation",
            Self::Plan => "plan",
            Self::Admission => "admission",
            Self::Paths => "paths",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs one input; panics when an invariant breaks.
    pub fn run(self, data: &[u8]) {
        match self {
            Self::Annotation => annotation_target(data),
            Self::Plan => plan_target(data),
            Self::Admission => admission_target(data),
            Self::Paths => paths_target(data),
        }
    }
}

/// FNV-1a, to pick a configuration from the input deterministically.
pub(crate) fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What every file the agent may write must be: relative, clean, bounded, and not one of the
/// writer's own `..`-prefixed top-level names (`..data`, staging directories).
pub fn check_secret_path(p: &str) {
    assert!(!p.is_empty(), "empty path");
    assert!(!p.starts_with('/'), "absolute path {p:?}");
    let components: Vec<&str> = p.split('/').collect();
    assert!(components.len() <= MAX_COMPONENTS, "too deep: {p:?}");
    for c in &components {
        assert!(
            !c.is_empty() && *c != "." && *c != "..",
            "unsafe component in {p:?}"
        );
        assert!(
            !c.chars().any(char::is_control),
            "control character in {p:?}"
        );
        assert!(
            c.len() <= MAX_COMPONENT_BYTES,
            "component too long in {p:?}"
        );
    }
    assert!(
        !components[0].starts_with(".."),
        "top-level name {:?} collides with the writer's `..data` and staging names",
        components[0]
    );
}

/// A message for a log line or the termination message: one line.
pub(crate) fn check_one_line(message: &str) {
    assert!(
        !message.chars().any(|c| c == '\n' || c == '\r' || c == '\0'),
        "message is not one line: {message:?}"
    );
}
