//! Handler tests with real AdmissionReview JSON.

use flyte_secret_testkit::fixtures::{
    Review, apply_response, flyte_pod, review as review_json, vector,
};
use serde_json::{Value, json};

use super::*;

fn answer(body: &Value) -> (Value, Verdict) {
    let a = review(body.to_string().as_bytes(), &Settings::default()).expect("answered");
    (serde_json::from_slice(&a.body).unwrap(), a.verdict)
}

#[test]
fn patch_is_a_base64_jsonpatch_and_the_uid_round_trips() {
    let pod = flyte_pod(&[vector("user-info/user_secret")]);
    let (out, verdict) = answer(&review_json(
        "705ab4f5-6393-11e8-b7cc-42010a800002",
        "CREATE",
        &pod,
    ));
    assert_eq!(verdict, Verdict::Injected);
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let rsp = &out["response"];
    assert_eq!(rsp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(rsp["allowed"], true);
    assert_eq!(rsp["patchType"], "JSONPatch");
    assert!(
        rsp["patch"].is_string(),
        "patch is a string, not a number array"
    );
    let (_, patched) = apply_response(&pod, &out);
    assert_eq!(
        patched.spec.unwrap().init_containers.unwrap()[0].name,
        crate::mutate::AGENT_CONTAINER
    );
    // The supplementalGroups policy warns: warnings are passed through.
    assert!(rsp["warnings"].as_array().is_some_and(|w| !w.is_empty()));
}

#[test]
fn everything_but_a_labelled_pod_create_is_allowed_unchanged() {
    let pod = flyte_pod(&[vector("user-info/user_secret")]);
    for op in ["UPDATE", "DELETE", "CONNECT"] {
        let (out, verdict) = answer(&review_json("u1", op, &pod));
        assert_eq!(verdict, Verdict::Skipped, "{op}");
        assert_eq!(
            out["response"],
            json!({"uid": "u1", "allowed": true}),
            "{op}"
        );
    }
    let mut unlabelled = pod.clone();
    unlabelled["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("inject-flyte-secrets");
    let (out, _) = answer(&review_json("u2", "CREATE", &unlabelled));
    assert_eq!(out["response"], json!({"uid": "u2", "allowed": true}));

    // Another kind, even labelled.
    let mut body = review_json("u3", "CREATE", &pod);
    body["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    let (out, _) = answer(&body);
    assert_eq!(out["response"], json!({"uid": "u3", "allowed": true}));
    // A subresource.
    let mut body = review_json("u4", "CREATE", &pod);
    body["request"]["subResource"] = json!("binding");
    let (out, _) = answer(&body);
    assert_eq!(out["response"]["allowed"], true);
    assert!(out["response"].get("patch").is_none());
}

#[test]
fn denials_carry_code_400_and_the_reason() {
    let mut pod = flyte_pod(&[vector("user-info/user_secret")]);
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = json!("!!!");
    let (out, verdict) = answer(&review_json("u5", "CREATE", &pod));
    assert_eq!(verdict, Verdict::Denied);
    let rsp = &out["response"];
    assert_eq!(rsp["uid"], "u5");
    assert_eq!(rsp["allowed"], false);
    assert_eq!(rsp["status"]["code"], 400);
    let msg = rsp["status"]["message"].as_str().unwrap();
    assert!(msg.contains("flyte.secrets/s0"), "{msg}");
    assert!(rsp.get("patch").is_none());

    // A pod object that is not a Pod.
    let mut body = review_json("u6", "CREATE", &pod);
    body["request"]["object"]["spec"]["containers"] = json!("nope");
    let (out, verdict) = answer(&body);
    assert_eq!(verdict, Verdict::Denied);
    assert_eq!(out["response"]["status"]["code"], 400);
}

#[test]
fn malformed_bodies_are_bad_reviews() {
    let settings = Settings::default();
    for body in [
        &b"not json"[..],
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        br#"{"apiVersion":"v1","kind":"Pod","request":{}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}"#,
    ] {
        assert!(
            review(body, &settings).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn v1beta1_reviews_are_answered_in_kind() {
    let pod = flyte_pod(&[vector("user-info/user_secret")]);
    let body = Review::new(&pod)
        .uid("u7")
        .api_version("admission.k8s.io/v1beta1")
        .build();
    let (out, _) = answer(&body);
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(out["response"]["uid"], "u7");
}

#[test]
fn the_pod_fast_path_answers_exactly_as_the_general_path() {
    let settings = Settings::default();
    let pods = [
        flyte_pod(&[vector("user-info/user_secret")]),
        flyte_pod(&[
            vector("user-info/user_secret"),
            flyte_secret_spec::SecretRequest::new("other", "key").with_group_version("v1"),
        ]),
    ];
    for pod in pods {
        let body = review_json("u8", "CREATE", &pod).to_string();
        let fast = review(body.as_bytes(), &settings).expect("answered");
        let general: AdmissionReview<DynamicObject> = serde_json::from_str(&body).unwrap();
        let request: AdmissionRequest<DynamicObject> = general.try_into().unwrap();
        let slow =
            super::answer(request, &settings, |o: DynamicObject| o.try_parse::<Pod>()).unwrap();
        assert_eq!(fast.verdict, slow.verdict);
        assert_eq!(fast.secrets, slow.secrets);
        assert_eq!(
            String::from_utf8(fast.body).unwrap(),
            String::from_utf8(slow.body).unwrap()
        );
    }
}
