//! `dam-tools`: the tools by name and a batch of runs in one process.

use std::process::Command;

use dam_core::testing::{dam_case_dir, dam_case_json, dam_tiny_checkpoint};

fn describe_args(case: &str) -> Vec<String> {
    let dir = dam_case_dir(case);
    let json = dam_case_json(case);
    vec![
        "describe".into(),
        "--model".into(),
        dam_tiny_checkpoint().display().to_string(),
        "--image".into(),
        dir.join("image.png").display().to_string(),
        "--mask".into(),
        dir.join("mask.png").display().to_string(),
        "--greedy".into(),
        "--max-new-tokens".into(),
        "24".into(),
        "--json".into(),
        "--query".into(),
        json["query"].as_str().unwrap().to_string(),
    ]
}

#[test]
fn batch_runs_every_line_and_marks_each() {
    let dir = std::env::temp_dir().join(format!("dam-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let batch = dir.join("runs.jsonl");
    let lines = [
        serde_json::to_string(&describe_args("center")).unwrap(),
        "# a comment".to_string(),
        serde_json::to_string(&describe_args("tiny")).unwrap(),
    ];
    std::fs::write(&batch, lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dam-tools"))
        .arg("batch")
        .arg(&batch)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut results = Vec::new();
    let mut last = None;
    for line in stdout.lines() {
        if line.starts_with("<== [") {
            assert!(line.ends_with("exit OK"), "{line}");
            results.push(serde_json::from_str::<serde_json::Value>(last.unwrap()).unwrap());
        } else if !line.starts_with("==> [") {
            last = Some(line);
        }
    }
    assert_eq!(results.len(), 2, "{stdout}");
    for (json, case) in results.iter().zip(["center", "tiny"]) {
        assert_eq!(json["token_ids"], dam_case_json(case)["generated_ids"], "{case}");
    }
}

#[test]
fn tools_by_name_and_errors() {
    let tools = || Command::new(env!("CARGO_BIN_EXE_dam-tools"));
    let out = tools().args(describe_args("border")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(json["token_ids"], dam_case_json("border")["generated_ids"]);

    let out = tools().arg("rm").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tool"));

    let bad = std::env::temp_dir().join(format!("dam-tools-bad-{}.jsonl", std::process::id()));
    std::fs::write(&bad, "[\"describe\", \"--model\", \"/nonexistent\"]\n").unwrap();
    let out = tools().arg("batch").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("exit FAILED"));
}
