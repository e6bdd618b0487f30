//! The `segment` CLI on every SAM fixture case, and `describe --points/--box/--scribble` with
//! the tiny SAM and tiny DAM fixtures: the mask used equals SAM's best mask.

use std::path::{Path, PathBuf};
use std::process::Command;

use dam_core::Mask;
use dam_core::testing::{Reference, dam_tiny_checkpoint, fixtures_dir};

fn sam_dir() -> PathBuf {
    fixtures_dir().join("sam-tiny")
}

fn cases() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sam_dir().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dam-sam-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Region arguments of a case: `--points/--labels`, `--box`, or `--scribble`.
fn prompt_args(case: &str) -> Vec<String> {
    let dir = sam_dir().join("cases").join(case);
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("prompt.json")).unwrap()).unwrap();
    let mut args = Vec::new();
    if let Some(s) = p["scribble"].as_str() {
        args.extend(["--scribble".to_string(), dir.join(s).display().to_string()]);
        return args;
    }
    if let Some(points) = p["points"].as_array() {
        let xy: Vec<String> = points.iter().map(|q| format!("{},{}", q[0], q[1])).collect();
        let labels: Vec<String> = p["labels"].as_array().unwrap().iter().map(|l| l.to_string()).collect();
        args.extend(["--points".into(), xy.join(";"), "--labels".into(), labels.join(",")]);
    }
    if let Some(b) = p["box"].as_array() {
        let v: Vec<String> = b.iter().map(|x| x.to_string()).collect();
        args.extend(["--box".into(), v.join(",")]);
    }
    args
}

/// Asserts `mask` equals the case's best mask except where the reference logit is within
/// 1e-3 of 0 (at most 0.1 % of pixels); returns the number of differing pixels.
fn assert_best_mask(case: &str, mask: &Mask) -> usize {
    let dir = sam_dir().join("cases").join(case);
    let expected = Mask::open(dir.join("best_mask.png")).unwrap();
    let (logits, _) = Reference::open_path(&dir.join("tensors.safetensors")).f32("best_mask_logits");
    assert_eq!(
        (mask.width(), mask.height()),
        (expected.width(), expected.height()),
        "{case}: size"
    );
    let mut differing = 0;
    for (i, (a, b)) in mask.as_slice().iter().zip(expected.as_slice()).enumerate() {
        if a != b {
            assert!(
                logits[i].abs() < 1e-3,
                "{case}: pixel {i} differs with logit {}",
                logits[i]
            );
            differing += 1;
        }
    }
    assert!(
        differing * 1000 <= mask.as_slice().len(),
        "{case}: {differing} differing pixels"
    );
    eprintln!("{case}: {differing} differing pixels");
    differing
}

/// Numbers of a nested JSON array, in order.
fn flatten(v: &serde_json::Value) -> Vec<f64> {
    match v {
        serde_json::Value::Array(a) => a.iter().flat_map(flatten).collect(),
        other => vec![other.as_f64().unwrap()],
    }
}

fn last_json(stdout: &[u8]) -> serde_json::Value {
    let s = String::from_utf8_lossy(stdout);
    serde_json::from_str(s.lines().last().unwrap()).unwrap()
}

#[test]
fn segment_matches_every_sam_case() {
    for case in cases() {
        let dir = sam_dir().join("cases").join(&case);
        let out_png = scratch(&format!("{case}.png"));
        let overlay = scratch(&format!("{case}-overlay.png"));
        let out = Command::new(env!("CARGO_BIN_EXE_segment"))
            .arg("--sam")
            .arg(sam_dir().join("checkpoint"))
            .arg("--image")
            .arg(dir.join("image.png"))
            .args(prompt_args(&case))
            .arg("--out")
            .arg(&out_png)
            .arg("--overlay")
            .arg(&overlay)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{case}: {}", String::from_utf8_lossy(&out.stderr));
        let json = last_json(&out.stdout);
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        assert_eq!(json["best_index"], expected["best_index"], "{case}: best index");
        let ours: Vec<f64> = json["iou_scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let theirs = flatten(&expected["iou_scores"]);
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 1e-4, "{case}: iou {a} vs {b}");
        }
        assert_best_mask(&case, &Mask::open(&out_png).unwrap());
        assert!(Path::new(&overlay).is_file());
    }
}

#[test]
fn describe_through_sam_uses_sams_best_mask() {
    // `describe` takes one region kind; the box + point case is `segment`-only.
    for case in cases().into_iter().filter(|c| c != "box_point") {
        let dir = sam_dir().join("cases").join(&case);
        let used = scratch(&format!("{case}-used.png"));
        let out = Command::new(env!("CARGO_BIN_EXE_describe"))
            .arg("--model")
            .arg(dam_tiny_checkpoint())
            .arg("--sam")
            .arg(sam_dir().join("checkpoint"))
            .arg("--image")
            .arg(dir.join("image.png"))
            .args(prompt_args(&case))
            .args(["--greedy", "--max-new-tokens", "4", "--json", "--save-mask"])
            .arg(&used)
            .output()
            .unwrap();
        assert!(out.status.success(), "{case}: {}", String::from_utf8_lossy(&out.stderr));
        let json = last_json(&out.stdout);
        assert_eq!(json["token_ids"].as_array().unwrap().len(), 4);
        assert_best_mask(&case, &Mask::open(&used).unwrap());
    }
}
