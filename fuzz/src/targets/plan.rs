//! The `plan` target: a fetch plan (JSON). Never panics; an accepted plan re-parses to
//! itself, and every target path is safe.

use flyte_secret_spec::plan::FetchPlan;

use super::check_secret_path;

pub(super) fn plan_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plan = match FetchPlan::from_json(text) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    check_plan(&plan);
}

/// What the agent relies on in a plan it accepted.
pub fn check_plan(plan: &FetchPlan) {
    let again = FetchPlan::from_json(&plan.to_json()).expect("an accepted plan re-parses");
    assert_eq!(&again, plan, "plan does not round-trip through JSON");
    let layout = plan.layout();
    let mount = plan.mount_path.trim_end_matches('/');
    assert!(plan.mount_path.starts_with('/'), "{:?}", plan.mount_path);
    for s in &plan.secrets {
        assert!(!s.files.is_empty(), "secret without files");
        assert_eq!(layout.files(&s.request).as_ref(), Ok(&s.files));
        for f in &s.files {
            check_secret_path(f.as_str());
            assert!(layout.absolute(f).starts_with(&format!("{mount}/")));
        }
        for companion in [".creds", ".lease"] {
            let c = layout
                .companion(&s.files[0], companion)
                .expect("companions are valid");
            check_secret_path(c.as_str());
        }
        for e in &s.env {
            assert!(!e.is_empty() && !e.contains('\0'), "env name {e:?}");
        }
    }
}
