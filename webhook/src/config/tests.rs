//! Settings tests: defaults, precedence, validation.

use super::*;

#[test]
fn defaults() {
    let s = Settings::default();
    assert_eq!(s.layout, Layout::default());
    assert_eq!(s.backends.len(), 1);
    assert_eq!(s.backends[0].kind(), "kubernetes");
    assert!(s.agent.image.ends_with(env!("CARGO_PKG_VERSION")));
    assert_eq!(s.volume_size_limit.0, "16Mi");
    let req = s.agent.resources.requests.unwrap();
    assert_eq!(req["cpu"].0, "10m");
    assert_eq!(req["memory"].0, "16Mi");
    assert_eq!(s.agent.resources.limits.unwrap()["memory"].0, "64Mi");
    assert!(s.exec_wrap.enabled && s.exec_wrap.args_only);
    assert_eq!(s.exec_wrap.bin_path, "/flyte/bin");
    assert_eq!(s.exec_wrap.bin_size_limit.0, "16Mi");
}

#[test]
fn exec_wrap_settings() {
    let file = FileConfig::parse(
        r#"{"execWrap": false, "execWrapArgsOnly": false, "agentBinPath": "/opt/fsa/",
            "agentBinSizeLimit": "12Mi"}"#,
    )
    .unwrap();
    let s = Settings::resolve(&InjectArgs::default(), file).unwrap();
    assert!(!s.exec_wrap.enabled && !s.exec_wrap.args_only);
    assert_eq!(s.exec_wrap.bin_path, "/opt/fsa");
    assert_eq!(s.exec_wrap.bin_size_limit.0, "12Mi");
    let args = InjectArgs {
        exec_wrap: Some(true),
        ..Default::default()
    };
    let file = FileConfig::parse(r#"{"execWrap": false}"#).unwrap();
    assert!(Settings::resolve(&args, file).unwrap().exec_wrap.enabled);
    for bad in [
        "relative",
        "/",
        "/etc/flyte",
        "/etc/flyte/secrets/bin",
        "/a/../b",
    ] {
        let args = InjectArgs {
            agent_bin_path: Some(bad.into()),
            ..Default::default()
        };
        let e = Settings::resolve(&args, FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("agentBinPath"), "{bad}: {e}");
    }
    let args = InjectArgs {
        agent_bin_size_limit: Some("big".into()),
        ..Default::default()
    };
    assert!(Settings::resolve(&args, FileConfig::default()).is_err());
}

#[test]
fn flags_override_file_and_unknown_keys_fail() {
    let file = FileConfig::parse(
        r#"{"envPrefix": "_UNION_", "mountPath": "/etc/flyte/secrets",
            "backends": [{"type": "aws", "region": "us-east-2"}, {"type": "kubernetes"}],
            "agentEnv": [{"name": "AWS_REGION", "value": "us-east-2"}],
            "agentResources": {"requests": {"cpu": "5m"}}}"#,
    )
    .unwrap();
    let args = InjectArgs {
        env_prefix: Some("_FSEC_".into()),
        agent_memory_limit: Some("32Mi".into()),
        agent_env: vec!["EXTRA=1".into()],
        ..Default::default()
    };
    let s = Settings::resolve(&args, file).unwrap();
    assert_eq!(s.layout.env_prefix, "_FSEC_");
    assert_eq!(s.backends[0].kind(), "aws");
    assert_eq!(s.agent.env.len(), 2);
    assert_eq!(s.agent.resources.limits.unwrap()["memory"].0, "32Mi");
    assert!(
        FileConfig::parse(r#"{"mountpath": "/x"}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
}

#[test]
fn rejects_bad_values() {
    let bad = |args: InjectArgs| Settings::resolve(&args, FileConfig::default()).unwrap_err();
    let e = bad(InjectArgs {
        mount_path: Some("relative".into()),
        ..Default::default()
    });
    assert!(e.to_string().contains("mountPath"), "{e}");
    bad(InjectArgs {
        backends: Some("[]".into()),
        ..Default::default()
    });
    bad(InjectArgs {
        agent_memory_limit: Some("lots".into()),
        ..Default::default()
    });
    bad(InjectArgs {
        agent_env: vec![format!("{}=x", flyte_secret_spec::env::PLAN_ENV)],
        ..Default::default()
    });
    let e = bad(InjectArgs {
        agent_log_format: Some("JSON".into()),
        ..Default::default()
    });
    assert_eq!(
        e.to_string(),
        "invalid setting agentLogFormat: must be json or plain"
    );
    bad(InjectArgs {
        fallback_uid: Some(0),
        ..Default::default()
    });
}

#[test]
fn quantities() {
    for ok in ["10m", "16Mi", "1", "0.5", "1e3", "1E-2", "+2Gi", ".5"] {
        assert!(is_quantity(ok), "{ok}");
    }
    for bad in ["", "Mi", "1.2.3", "10 m", "1e", "5mb", "."] {
        assert!(!is_quantity(bad), "{bad}");
    }
}

#[test]
fn refresh_interval_is_off_by_default_and_bounded() {
    use flyte_secret_spec::refresh::Refresh;
    use std::time::Duration;
    assert_eq!(Settings::default().refresh, Refresh::Off);
    let file = FileConfig::parse(r#"{"refreshInterval": "5m"}"#).unwrap();
    let s = Settings::resolve(&InjectArgs::default(), file).unwrap();
    assert_eq!(s.refresh, Refresh::Every(Duration::from_secs(300)));
    // The flag wins over the file.
    let file = FileConfig::parse(r#"{"refreshInterval": "5m"}"#).unwrap();
    let args = InjectArgs {
        refresh_interval: Some("off".into()),
        ..Default::default()
    };
    assert_eq!(
        Settings::resolve(&args, file).unwrap().refresh,
        Refresh::Off
    );
    for bad in ["5s", "48h", "often"] {
        let args = InjectArgs {
            refresh_interval: Some(bad.into()),
            ..Default::default()
        };
        let e = Settings::resolve(&args, FileConfig::default()).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid setting refreshInterval"),
            "{e}"
        );
    }
}
