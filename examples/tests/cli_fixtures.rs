//! The `describe` CLI on every public fixture case: the generated ids equal the original's,
//! and the `--dump` tensors are within 1e-5 (pixel_values), 1e-4 (projector_output,
//! llm_inputs_embeds) and 1e-3 (step_logits) of the reference.

use std::path::PathBuf;
use std::process::Command;

use dam_core::testing::{Reference, assert_close, dam_case_dir, dam_case_json, dam_cases, dam_tiny_checkpoint};

fn describe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_describe"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dam-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `--image/--mask` arguments of a case (pairs per frame for the video case).
fn frame_args(name: &str, case: &serde_json::Value) -> Vec<String> {
    let dir = dam_case_dir(name);
    let frames = case["num_frames"].as_u64().unwrap() as usize;
    let mut args = Vec::new();
    for k in 0..frames {
        let (img, msk) = if case["kind"] == "video" {
            (format!("image_{k}.png"), format!("mask_{k}.png"))
        } else {
            ("image.png".to_string(), "mask.png".to_string())
        };
        args.extend(["--image".to_string(), dir.join(img).display().to_string()]);
        args.extend(["--mask".to_string(), dir.join(msk).display().to_string()]);
    }
    args
}

fn last_json_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8(stdout.to_vec()).unwrap();
    serde_json::from_str(text.lines().last().expect("output")).expect("last line is JSON")
}

#[test]
fn every_case_through_the_cli_matches_ids_and_dumped_tensors() {
    for name in dam_cases() {
        let case = dam_case_json(&name);
        let dump = scratch(&format!("{name}.safetensors"));
        let out = describe()
            .arg("--model")
            .arg(dam_tiny_checkpoint())
            .args(frame_args(&name, &case))
            .args(["--greedy", "--max-new-tokens", "24", "--json", "--query"])
            .arg(case["query"].as_str().unwrap())
            .arg("--dump")
            .arg(&dump)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let json = last_json_line(&out.stdout);
        assert_eq!(json["token_ids"], case["generated_ids"], "{name}: generated ids");
        assert_eq!(json["text"], case["text"], "{name}: text");

        let ours = Reference::open_path(&dump);
        let reference = Reference::open(&name);
        for (tensor, tol) in [
            ("pixel_values", 1e-5),
            ("projector_output", 1e-4),
            ("llm_inputs_embeds", 1e-4),
            ("step_logits", 1e-3),
        ] {
            let (a, sa) = ours.f32(tensor);
            let (b, sb) = reference.f32(tensor);
            assert_eq!(sa, sb, "{name} {tensor} shape");
            assert_close(&format!("{name} {tensor}"), &a, &b, tol);
        }
    }
}

#[test]
fn without_json_the_text_streams_to_stdout() {
    let name = "center";
    let case = dam_case_json(name);
    let out = describe()
        .arg("--model")
        .arg(dam_tiny_checkpoint())
        .args(frame_args(name, &case))
        .args(["--greedy", "--max-new-tokens", "24"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim_end_matches('\n'),
        case["text"].as_str().unwrap()
    );
}

#[test]
fn bad_inputs_exit_non_zero_with_a_message_and_no_panic() {
    let dir = dam_case_dir("center");
    let img = dir.join("image.png");
    let other_size = dam_case_dir("tiny").join("mask.png");
    let empty = scratch("empty.png");
    image::GrayImage::new(200, 150).save(&empty).unwrap();
    let no_placeholder = ["--query", "Describe it."];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--mask".into(), other_size.display().to_string()],
            "mask is 230x170 but the image is 200x150",
        ),
        (vec!["--mask".into(), empty.display().to_string()], "mask is empty"),
        (vec!["--box".into(), "10,10,5,5".into()], "x0 < x1"),
        (vec!["--points".into(), "10,10".into()], "--sam"),
        (
            vec![
                "--mask".into(),
                dir.join("mask.png").display().to_string(),
                no_placeholder[0].into(),
                no_placeholder[1].into(),
            ],
            "<image>",
        ),
        (vec!["--mask".into(), "/nonexistent.png".into()], "cannot read mask"),
    ];
    for (args, expected) in cases {
        let out = describe()
            .arg("--model")
            .arg(dam_tiny_checkpoint())
            .arg("--image")
            .arg(&img)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: stderr {stderr:?} lacks {expected:?}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: panicked: {stderr}");
    }
    let out = describe()
        .args(["--model", "/nonexistent/checkpoint", "--image"])
        .arg(&img)
        .arg("--mask")
        .arg(dir.join("mask.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a folder"));
}

#[test]
fn video_from_frame_and_mask_folders() {
    let name = "video";
    let case = dam_case_json(name);
    let dir = dam_case_dir(name);
    let root = scratch("folders");
    let (frames, masks) = (root.join("frames"), root.join("masks"));
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    for k in 0..case["num_frames"].as_u64().unwrap() {
        std::fs::copy(dir.join(format!("image_{k}.png")), frames.join(format!("{k:04}.png"))).unwrap();
        std::fs::copy(dir.join(format!("mask_{k}.png")), masks.join(format!("{k:04}.png"))).unwrap();
    }
    let out = describe()
        .arg("--model")
        .arg(dam_tiny_checkpoint())
        .arg("--frames-dir")
        .arg(&frames)
        .arg("--masks-dir")
        .arg(&masks)
        .args(["--greedy", "--max-new-tokens", "24", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The default query for 3 frames is the case's `Video: <image><image><image>\n…`.
    let json = last_json_line(&out.stdout);
    assert_eq!(json["token_ids"], case["generated_ids"]);
    assert_eq!(json["frames"], 3);
}
