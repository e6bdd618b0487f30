//! The LLM side against the original implementation (`tests/fixtures/dam-tiny`), CPU backend,
//! f32: spliced inputs, every step's logits and the greedy ids; and batched decoding.

use burn::tensor::{Device, Tensor};
use dam_core::CheckpointConfig;
use dam_core::testing::{
    Reference, assert_close, dam_case_json, dam_cases, dam_expected_ids, dam_tiny_checkpoint, reference_image_tokens,
};
use dam_llm::session::{Session, SessionOptions};
use dam_llm::splice::splice;
use dam_llm::{LlamaModel, Sampling};

fn model(device: &Device) -> LlamaModel {
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    LlamaModel::load(&dam_tiny_checkpoint().join("llm"), &config.llm, device).unwrap()
}

/// The case's spliced prompt, built from its ids and the reference projector output.
fn prompt(model: &LlamaModel, name: &str, device: &Device) -> Tensor<2> {
    let case = dam_case_json(name);
    let ids: Vec<i64> = case["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let images = reference_image_tokens(name, device);
    splice(model, &ids, &images).unwrap()
}

fn greedy(max_new_tokens: usize, record: bool) -> SessionOptions {
    SessionOptions {
        max_new_tokens,
        sampling: Sampling::Greedy,
        eos: vec![2],
        suppress_eos: false,
        record_logits: record,
        lookahead: dam_llm::session::DEFAULT_LOOKAHEAD,
        prompt_multiple: dam_llm::session::DEFAULT_PROMPT_MULTIPLE,
        cache_multiple: dam_llm::session::DEFAULT_CACHE_MULTIPLE,
    }
}

/// One prompt generated to the end: its ids and (with `record_logits`) its step logits.
fn run_to_end(model: &LlamaModel, prompt: &Tensor<2>, options: SessionOptions) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut s = Session::new(model, vec![prompt.clone()], options).unwrap();
    while s.step().unwrap().is_some() {}
    (s.tokens()[0].clone(), s.step_logits()[0].clone())
}

#[test]
fn inputs_embeds_step_logits_and_greedy_ids_match() {
    let device = Device::flex();
    let model = model(&device);
    for name in dam_cases() {
        let reference = Reference::open(&name);
        let embeds = prompt(&model, &name, &device);
        let (expected, shape) = reference.f32("llm_inputs_embeds");
        assert_eq!(
            vec![1, embeds.dims()[0], embeds.dims()[1]],
            shape,
            "{name} llm_inputs_embeds shape"
        );
        assert_close(
            &format!("{name} llm_inputs_embeds"),
            &embeds.clone().try_into_vec_as::<f32>().unwrap(),
            &expected,
            1e-4,
        );

        let expected_ids = dam_expected_ids(&name);
        let mut session = Session::new(&model, vec![embeds], greedy(expected_ids.len(), true)).unwrap();
        while session.step().unwrap().is_some() {}
        assert_eq!(session.tokens()[0], expected_ids, "{name} greedy ids");
        let (logits, shape) = reference.f32("step_logits");
        let v = shape[1];
        let steps = &session.step_logits()[0];
        assert_eq!(steps.len(), shape[0], "{name}: one logits row per step");
        for (i, row) in steps.iter().enumerate() {
            assert_close(
                &format!("{name} step_logits[{i}]"),
                row,
                &logits[i * v..(i + 1) * v],
                1e-3,
            );
        }
    }
}

#[test]
fn a_batch_of_different_lengths_gives_the_same_ids_as_one_by_one() {
    let device = Device::flex();
    let model = model(&device);
    let names = dam_cases();
    // The video case is longer than the image cases: the others are left-padded.
    let prompts: Vec<Tensor<2>> = names.iter().map(|n| prompt(&model, n, &device)).collect();
    let lens: Vec<usize> = prompts.iter().map(|p| p.dims()[0]).collect();
    assert!(lens.iter().any(|&l| l != lens[0]), "cases of different lengths");
    let mut batch = Session::new(&model, prompts.clone(), greedy(24, false)).unwrap();
    while batch.step().unwrap().is_some() {}
    for (i, (name, p)) in names.iter().zip(prompts).enumerate() {
        let mut single = Session::new(&model, vec![p], greedy(24, false)).unwrap();
        while single.step().unwrap().is_some() {}
        assert_eq!(batch.tokens()[i], single.tokens()[0], "{name}: batched vs alone");
        assert_eq!(single.tokens()[0], dam_expected_ids(name), "{name}: alone vs fixture");
    }
}

/// Extra cache slots (`SessionOptions::cache_multiple`) are never written and always masked:
/// the same ids and logits as an exact cache, at the default and at an odd multiple.
#[test]
fn a_longer_cache_changes_nothing() {
    let device = Device::flex();
    let model = model(&device);
    for name in dam_cases() {
        let p = prompt(&model, &name, &device);
        let run = |cache_multiple: usize| {
            let options = SessionOptions {
                cache_multiple,
                ..greedy(24, true)
            };
            run_to_end(&model, &p, options)
        };
        let (ids, logits) = run(1);
        assert_eq!(ids, dam_expected_ids(&name), "{name}: exact cache vs fixture");
        for multiple in [dam_llm::session::DEFAULT_CACHE_MULTIPLE, 37] {
            let (more_ids, more_logits) = run(multiple);
            assert_eq!(more_ids, ids, "{name}: ids with the cache a multiple of {multiple}");
            for (i, (a, b)) in more_logits.iter().zip(&logits).enumerate() {
                assert_close(
                    &format!("{name} cache multiple {multiple} step_logits[{i}]"),
                    a,
                    b,
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn padding_the_prompt_to_a_multiple_changes_nothing() {
    let device = Device::flex();
    let model = model(&device);
    let mut padded_some = false;
    for name in dam_cases() {
        let p = prompt(&model, &name, &device);
        let multiple = 16;
        padded_some |= !p.dims()[0].is_multiple_of(multiple);
        let run = |prompt_multiple: usize| {
            let options = SessionOptions {
                prompt_multiple,
                ..greedy(24, true)
            };
            run_to_end(&model, &p, options)
        };
        let (ids, logits) = run(1);
        let (padded_ids, padded_logits) = run(multiple);
        assert_eq!(padded_ids, ids, "{name}: ids with the prompt padded");
        assert_eq!(padded_ids, dam_expected_ids(&name), "{name}: padded vs fixture");
        for (i, (a, b)) in padded_logits.iter().zip(&logits).enumerate() {
            assert_close(&format!("{name} padded step_logits[{i}]"), a, b, 1e-4);
        }
    }
    assert!(padded_some, "some case's prompt is not a multiple already");
}

#[test]
fn seeded_sampling_is_reproducible() {
    let device = Device::flex();
    let model = model(&device);
    let p = prompt(&model, "center", &device);
    let run = |seed: u64, top_k: usize| {
        let options = SessionOptions {
            sampling: Sampling::from_temperature(1.0, top_k, 0.9, seed),
            ..greedy(16, false)
        };
        run_to_end(&model, &p, options).0
    };
    assert_eq!(run(5, 50), run(5, 50));
    assert_eq!(run(5, 0), run(5, 0));
    assert_ne!(run(5, 50), run(6, 50));
}

#[test]
fn splice_errors() {
    let device = Device::flex();
    let model = model(&device);
    let img = Tensor::<2>::zeros([16, 64], &device);
    let r = splice(&model, &[1, 5, -200, 7], &[]);
    assert!(matches!(
        r,
        Err(dam_llm::LlmError::ImageCountMismatch {
            placeholders: 1,
            images: 0
        })
    ));
    let r = splice(&model, &[1, 5, 7], std::slice::from_ref(&img));
    assert!(matches!(
        r,
        Err(dam_llm::LlmError::ImageCountMismatch {
            placeholders: 0,
            images: 1
        })
    ));
    let r = splice(&model, &[1, -200], &[Tensor::zeros([16, 32], &device)]);
    assert!(matches!(r, Err(dam_llm::LlmError::ImageEmbeddingShape { .. })));
    let r = splice(&model, &[1, 9999, -200], &[img]);
    assert!(matches!(r, Err(dam_llm::LlmError::BadTokenId { id: 9999, .. })));
}

#[test]
fn lookahead_gives_the_same_ids_and_stops() {
    let device = Device::flex();
    let model = model(&device);
    let names = dam_cases();
    let prompts: Vec<Tensor<2>> = names.iter().map(|n| prompt(&model, n, &device)).collect();
    // An "EOS" that the first case generates at step 5, so sequences end inside a chunk.
    let early_eos = dam_expected_ids(&names[0])[5];
    for eos in [2, early_eos] {
        let run = |lookahead: usize| {
            let options = SessionOptions {
                eos: vec![eos],
                lookahead,
                ..greedy(21, false)
            };
            let mut s = Session::new(&model, prompts.clone(), options).unwrap();
            while s.step().unwrap().is_some() {}
            let t = s.timings();
            assert!(t.decode_enqueue <= t.decode);
            (s.tokens().to_vec(), s.finished().to_vec())
        };
        let one = run(1);
        if eos == early_eos {
            assert_eq!(one.0[0].len(), 5, "the first case stops at its fifth token");
        }
        assert!(one.0.iter().any(|t| t.len() == 21), "some sequence runs to the limit");
        for lookahead in [3, 8, 32] {
            assert_eq!(run(lookahead), one, "lookahead {lookahead}, eos {eos}");
        }
    }
}
