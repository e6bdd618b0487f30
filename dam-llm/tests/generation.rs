//! Text-level generation on the fixtures: the final text equals the original's, and the
//! streamed deltas concatenate to it; stop strings cut the text.

use burn::tensor::{Device, Tensor};
use dam_core::CheckpointConfig;
use dam_core::testing::{dam_case_json, dam_cases, dam_tiny_checkpoint, reference_image_tokens};
use dam_llm::session::StopReason;
use dam_llm::splice::splice;
use dam_llm::{DamTokenizer, GenerationOptions, LlamaModel, TextStream, generate};

fn setup(device: &Device) -> (LlamaModel, DamTokenizer) {
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let llm = dam_tiny_checkpoint().join("llm");
    (
        LlamaModel::load(&llm, &config.llm, device).unwrap(),
        DamTokenizer::from_dir(&llm).unwrap(),
    )
}

/// The case's prompt from its text, through our tokenizer, and the reference projector output.
fn prompt(model: &LlamaModel, tokenizer: &DamTokenizer, name: &str, device: &Device) -> Tensor<2> {
    let case = dam_case_json(name);
    let ids = tokenizer.tokenize_prompt(case["prompt"].as_str().unwrap()).unwrap();
    let images = reference_image_tokens(name, device);
    splice(model, &ids, &images).unwrap()
}

/// Greedy session options, EOS suppressed, one step per read-back, no prompt padding.
fn greedy_session(max_new_tokens: usize, cache_multiple: usize) -> dam_llm::SessionOptions {
    dam_llm::SessionOptions {
        max_new_tokens,
        sampling: dam_llm::Sampling::Greedy,
        eos: vec![2],
        suppress_eos: true,
        record_logits: false,
        lookahead: 1,
        prompt_multiple: 1,
        cache_multiple,
    }
}

#[test]
fn text_and_stream_match_the_original() {
    let device = Device::flex();
    let (model, tokenizer) = setup(&device);
    let options = GenerationOptions::greedy(24);
    for name in dam_cases() {
        let case = dam_case_json(&name);
        let expected = case["text"].as_str().unwrap();
        let p = prompt(&model, &tokenizer, &name, &device);
        let generation = generate(&model, &tokenizer, vec![p.clone()], &options)
            .unwrap()
            .remove(0);
        assert_eq!(generation.text, expected, "{name}: text");
        assert_eq!(generation.stop_reason, StopReason::MaxTokens);

        let mut stream = TextStream::new(&model, &tokenizer, p, &options).unwrap();
        let deltas: Vec<String> = stream.by_ref().collect::<Result<_, _>>().unwrap();
        assert!(deltas.len() > 1, "{name}: streamed in pieces");
        assert!(deltas.iter().all(|d| !d.is_empty()));
        let finished = stream.finish().unwrap();
        assert_eq!(deltas.concat(), expected, "{name}: streamed text");
        assert_eq!(finished.text, expected);
        assert_eq!(finished.token_ids, generation.token_ids);
        assert!(finished.timings.decode_tokens > 0);
    }
}

#[test]
fn stop_strings_cut_generation_and_text() {
    let device = Device::flex();
    let (model, tokenizer) = setup(&device);
    let name = "center";
    let expected = dam_case_json(name)["text"].as_str().unwrap().to_string();
    // A stop string taken from the middle of the known output.
    let chars: Vec<char> = expected.chars().collect();
    let stop: String = chars[6..9].iter().collect();
    let cut = expected.find(&stop).unwrap();
    let options = GenerationOptions {
        stop_strings: vec![stop.clone()],
        ..GenerationOptions::greedy(24)
    };
    let p = prompt(&model, &tokenizer, name, &device);
    let generation = generate(&model, &tokenizer, vec![p.clone()], &options)
        .unwrap()
        .remove(0);
    assert_eq!(generation.stop_reason, StopReason::StopString(stop.clone()));
    assert_eq!(generation.text, dam_llm::tokenizer::python_strip(&expected[..cut]));
    assert!(generation.token_ids.len() < 24);
    let mut stream = TextStream::new(&model, &tokenizer, p, &options).unwrap();
    let streamed: String = stream.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(streamed, generation.text);
    assert_eq!(stream.finish().unwrap().stop_reason, StopReason::StopString(stop));
}

/// The fused decoder and recorded decode steps exist for cubecl devices only: on the CPU the
/// model stays on the plain path even when asked, and sessions never record.
#[test]
fn cpu_runs_the_plain_path_even_when_fused_is_asked_for() {
    let device = Device::flex();
    let (mut model, tokenizer) = setup(&device);
    assert!(!LlamaModel::fused_ops_available(&device));
    model.set_fused(true);
    assert!(!model.fused());
    let name = &dam_cases()[0];
    let options = greedy_session(4, dam_llm::session::DEFAULT_CACHE_MULTIPLE);
    let mut session = dam_llm::Session::new(&model, vec![prompt(&model, &tokenizer, name, &device)], options).unwrap();
    while session.step().unwrap().is_some() {}
    assert_eq!(session.tokens()[0].len(), 4);
    assert!(!session.decode_recorded());
}

#[test]
fn zero_new_tokens_is_a_typed_error_and_one_gives_one() {
    let device = Device::flex();
    let (model, tokenizer) = setup(&device);
    let name = &dam_cases()[0];
    let options = |n| greedy_session(n, 1);
    let zero = dam_llm::Session::new(&model, vec![prompt(&model, &tokenizer, name, &device)], options(0));
    assert!(
        matches!(&zero, Err(dam_llm::LlmError::BadOptions(m)) if m.contains("max_new_tokens")),
        "{:?}",
        zero.err()
    );
    let zero = generate(
        &model,
        &tokenizer,
        vec![prompt(&model, &tokenizer, name, &device)],
        &GenerationOptions::greedy(0),
    );
    assert!(matches!(zero, Err(dam_llm::LlmError::BadOptions(_))));
    assert!(GenerationOptions::greedy(0).validate().is_err());
    assert!(GenerationOptions::greedy(1).validate().is_ok());
    let mut one = dam_llm::Session::new(&model, vec![prompt(&model, &tokenizer, name, &device)], options(1)).unwrap();
    while one.step().unwrap().is_some() {}
    let expected = dam_core::testing::dam_expected_ids(name);
    assert_eq!(one.tokens()[0], expected[..1]);
}

/// `Session::stop` on a sequence outside the batch stops nothing (no panic); stopping one
/// sequence of two leaves the other to generate what it generates alone.
#[test]
fn stop_takes_any_index_and_stops_only_its_sequence() {
    let device = Device::flex();
    let (model, tokenizer) = setup(&device);
    let name = &dam_cases()[0];
    let p = || prompt(&model, &tokenizer, name, &device);
    let mut s = dam_llm::Session::new(&model, vec![p(), p()], greedy_session(6, 1)).unwrap();
    assert!(!s.stop(2, StopReason::MaxTokens), "index 2 of a batch of 2");
    assert!(!s.stop(usize::MAX, StopReason::MaxTokens));
    let first = s.step().unwrap().unwrap();
    assert!(first.iter().all(Option::is_some));
    assert!(s.stop(0, StopReason::StopString("x".into())));
    assert!(!s.stop(0, StopReason::MaxTokens), "already stopped");
    let next = s.step().unwrap().unwrap();
    assert_eq!(next[0], None, "a stopped sequence gets no token");
    while s.step().unwrap().is_some() {}
    assert_eq!(s.finished()[0], Some(StopReason::StopString("x".into())));
    assert_eq!(s.finished()[1], Some(StopReason::MaxTokens));
    assert_eq!(s.tokens()[0].len(), 1);
    let expected = dam_core::testing::dam_expected_ids(name);
    assert_eq!(s.tokens()[1], expected[..6]);
    assert_eq!(s.step().unwrap(), None, "a finished session steps no more");
}

/// A spliced prompt of the wrong width is a typed error naming it and both shapes, not a
/// panic inside the concatenation.
#[test]
fn a_prompt_of_the_wrong_width_is_a_typed_error() {
    let device = Device::flex();
    let (model, tokenizer) = setup(&device);
    let name = &dam_cases()[0];
    let good = prompt(&model, &tokenizer, name, &device);
    let hidden = model.hidden_size();
    let bad = Tensor::<2>::zeros([5, hidden + 1], &device);
    let r = dam_llm::Session::new(&model, vec![good, bad], greedy_session(2, 1));
    match r {
        Err(dam_llm::LlmError::PromptShape {
            index,
            found,
            hidden: h,
        }) => {
            assert_eq!((index, found, h), (1, vec![5, hidden + 1], hidden));
        }
        other => panic!("expected PromptShape, got {:?}", other.err()),
    }
    let bad = Tensor::<2>::zeros([5, hidden - 1], &device);
    let r = generate(&model, &tokenizer, vec![bad], &GenerationOptions::greedy(2));
    assert!(matches!(r, Err(dam_llm::LlmError::PromptShape { index: 0, .. })));
}
