//! The SentencePiece tokenizer against what the original Python implementation produced:
//! `tests/fixtures/dam-tiny/tokenizer_cases.json` and `cases/*/case.json` (transformers 4.46.3
//! slow `LlamaTokenizer`, `legacy=False`), and the real LLaMA-2 ids of dam-spec §6.4 when
//! `DAM_LLAMA_TOKENIZER` points at a LLaMA-2 `tokenizer.model`.
//!
//! `DAM_TOKENIZER_PARITY` may point at a JSON file produced outside this repository (for example
//! with Python `sentencepiece` emulating the slow tokenizer) to compare many more strings:
//! `{"model": "<path to tokenizer.model>", "encode": [{"text": .., "ids": [..]}],
//!   "decode": [{"ids": [..], "text": .., "skip_special": true}]}` (ids with BOS; `skip_special`
//! defaults to true).

use std::path::{Path, PathBuf};

use dam_llm::tokenizer::{DamTokenizer, IMAGE_TOKEN_INDEX, TokenizerError, python_strip};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dam-tiny")
}

fn llm_dir() -> PathBuf {
    fixture_dir().join("checkpoint/llm")
}

fn tiny() -> DamTokenizer {
    DamTokenizer::from_dir(&llm_dir()).expect("load the dam-tiny tokenizer")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn u32s(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("id list")
        .iter()
        .map(|v| u32::try_from(v.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

fn i64s(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .expect("id list")
        .iter()
        .map(|v| v.as_i64().expect("id"))
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("string list")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

fn tokenizer_cases() -> Vec<Value> {
    read_json(&fixture_dir().join("tokenizer_cases.json"))
        .as_array()
        .expect("tokenizer_cases.json is a list")
        .clone()
}

/// (case name, case.json) of every `cases/*/case.json`, sorted by name.
fn cases() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(fixture_dir().join("cases"))
        .expect("cases folder")
        .filter_map(|entry| {
            let path = entry.ok()?.path().join("case.json");
            let name = path.parent()?.file_name()?.to_str()?.to_owned();
            path.is_file().then(|| (name, read_json(&path)))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 4, "expected the four dam-tiny cases, found {}", out.len());
    out
}

/// The id of a piece, taken from the fixtures' own (ids, tokens) pairs.
fn fixture_piece_id(piece: &str) -> u32 {
    for case in tokenizer_cases() {
        for (id, token) in u32s(&case["ids"]).into_iter().zip(strings(&case["tokens"])) {
            if token == piece {
                return id;
            }
        }
    }
    panic!("piece {piece} does not occur in tokenizer_cases.json")
}

/// Streams `ids` and returns the deltas (each checked to be non-empty).
fn stream(tokenizer: &DamTokenizer, ids: &[u32]) -> Vec<String> {
    let mut decoder = tokenizer.stream_decoder();
    let mut deltas = Vec::new();
    for &id in ids {
        if let Some(delta) = decoder.push(id) {
            assert!(!delta.is_empty(), "push returned an empty delta");
            deltas.push(delta);
        }
    }
    let rest = decoder.finish();
    if !rest.is_empty() {
        deltas.push(rest);
    }
    deltas
}

#[test]
fn tokenizer_can_be_shared_between_threads() {
    fn assert_shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_shareable::<DamTokenizer>();
    let tokenizer = tiny();
    let copy = tokenizer.clone();
    let ids = std::thread::spawn(move || copy.encode("Describe the masked region in detail.", true))
        .join()
        .expect("thread")
        .expect("encode");
    assert_eq!(
        ids,
        tokenizer
            .encode("Describe the masked region in detail.", true)
            .expect("encode")
    );
}

#[test]
fn special_ids_and_vocab_size_follow_the_checkpoint() {
    let tokenizer = tiny();
    let config = read_json(&llm_dir().join("config.json"));
    assert_eq!(
        tokenizer.vocab_size() as u64,
        config["vocab_size"].as_u64().expect("vocab_size")
    );
    // <unk>=0 <s>=1 </s>=2 (fixture README), pad = <unk> (special_tokens_map.json).
    assert_eq!(tokenizer.unk_id(), 0);
    assert_eq!(tokenizer.bos_id(), 1);
    assert_eq!(tokenizer.eos_id(), 2);
    assert_eq!(tokenizer.pad_id(), tokenizer.unk_id());
    assert_eq!(tokenizer.tokens(&[0, 1, 2]), ["<unk>", "<s>", "</s>"]);
    let generation = read_json(&llm_dir().join("generation_config.json"));
    if let Some(bos) = generation["bos_token_id"].as_u64() {
        assert_eq!(u64::from(tokenizer.bos_id()), bos);
    }
    if let Some(eos) = generation["eos_token_id"].as_u64() {
        assert_eq!(u64::from(tokenizer.eos_id()), eos);
    }
    let debug = format!("{tokenizer:?}");
    assert!(debug.contains("vocab_size"), "{debug}");
}

#[test]
fn every_tokenizer_case_matches_the_slow_tokenizer() {
    let tokenizer = tiny();
    let cases = tokenizer_cases();
    assert!(!cases.is_empty());
    let mut image_cases = 0;
    for case in &cases {
        let text = case["text"].as_str().expect("text");
        let ids = u32s(&case["ids"]);
        assert_eq!(tokenizer.encode(text, true).expect("encode"), ids, "ids of {text:?}");
        assert_eq!(tokenizer.tokens(&ids), strings(&case["tokens"]), "pieces of {text:?}");
        let decoded = case["decoded_skip_special"].as_str().expect("decoded");
        assert_eq!(tokenizer.decode(&ids, true), decoded, "decode of {text:?}");
        if !case["tokenizer_image_token"].is_null() {
            image_cases += 1;
            let expected = i64s(&case["tokenizer_image_token"]);
            assert_eq!(
                tokenizer.tokenize_prompt(text).expect("prompt"),
                expected,
                "<image> split of {text:?}"
            );
        }
        // Without special tokens only the BOS goes (BOS is the first id of every fixture).
        assert_eq!(ids.first(), Some(&tokenizer.bos_id()));
        assert_eq!(
            tokenizer.encode(text, false).expect("encode"),
            ids[1..],
            "{text:?} without BOS"
        );
    }
    assert!(image_cases > 0, "no tokenizer_image_token entry was checked");
}

#[test]
fn every_case_prompt_gives_the_input_ids() {
    let tokenizer = tiny();
    for (name, case) in cases() {
        let prompt = case["prompt"].as_str().expect("prompt");
        let expected = i64s(&case["input_ids"]);
        let ids = tokenizer.tokenize_prompt(prompt).expect("tokenize_prompt");
        assert_eq!(ids, expected, "input_ids of case {name}");
        let sentinels = ids.iter().filter(|&&id| id == IMAGE_TOKEN_INDEX).count();
        assert_eq!(sentinels, prompt.matches("<image>").count(), "case {name}");
        if let Some(index) = case["image_token_index"].as_i64() {
            assert_eq!(index, IMAGE_TOKEN_INDEX);
        }
        if let Some(positions) = case["image_token_positions"].as_array() {
            let found: Vec<u64> = (0u64..)
                .zip(&ids)
                .filter(|(_, id)| **id == IMAGE_TOKEN_INDEX)
                .map(|(i, _)| i)
                .collect();
            let expected: Vec<u64> = positions.iter().map(|p| p.as_u64().expect("position")).collect();
            assert_eq!(found, expected, "image positions of case {name}");
        }
    }
}

#[test]
fn every_case_generation_decodes_to_the_text() {
    let tokenizer = tiny();
    for (name, case) in cases() {
        let generated = u32s(&case["generated_ids"]);
        assert_eq!(
            tokenizer.tokens(&generated),
            strings(&case["generated_tokens"]),
            "pieces of case {name}"
        );
        let text = case["text"].as_str().expect("text");
        assert_eq!(
            python_strip(&tokenizer.decode(&generated, true)),
            text,
            "text of case {name}"
        );
    }
}

#[test]
fn streaming_every_case_gives_the_decoded_text() {
    let tokenizer = tiny();
    for (name, case) in cases() {
        let generated = u32s(&case["generated_ids"]);
        let deltas = stream(&tokenizer, &generated);
        let joined: String = deltas.concat();
        assert_eq!(joined, tokenizer.decode(&generated, true), "stream of case {name}");
        assert_eq!(
            python_strip(&joined),
            case["text"].as_str().expect("text"),
            "case {name}"
        );
        // Every prefix of the generation streams to the same text as decoding that prefix at
        // once, up to the bytes still held back.
        for end in 0..=generated.len() {
            let mut decoder = tokenizer.stream_decoder();
            let mut text: String = generated[..end].iter().filter_map(|&id| decoder.push(id)).collect();
            text.push_str(&decoder.finish());
            assert_eq!(
                text,
                tokenizer.decode(&generated[..end], true),
                "case {name}, first {end} ids"
            );
        }
    }
}

#[test]
fn streaming_holds_bytes_until_the_character_is_complete() {
    let tokenizer = tiny();
    let unicode = tokenizer_cases()
        .into_iter()
        .find(|case| case["text"].as_str().is_some_and(|t| t.contains('東')))
        .expect("the unicode tokenizer case");
    let ids = u32s(&unicode["ids"]);
    let expected = unicode["decoded_skip_special"].as_str().expect("decoded");
    assert!(!expected.contains('\u{FFFD}'));
    let deltas = stream(&tokenizer, &ids);
    assert_eq!(deltas.concat(), expected);
    for delta in &deltas {
        assert!(
            !delta.contains('\u{FFFD}'),
            "delta {delta:?} has a replacement character"
        );
    }

    // 東 = E6 9D B1: nothing comes out before the last byte.
    let [e6, x9d, xb1] = ["<0xE6>", "<0x9D>", "<0xB1>"].map(fixture_piece_id);
    let mut decoder = tokenizer.stream_decoder();
    assert_eq!(decoder.push(e6), None);
    assert_eq!(decoder.push(x9d), None);
    assert_eq!(decoder.push(xb1).as_deref(), Some("東"));
    assert_eq!(decoder.finish(), "");

    // Special ids between the bytes are dropped before joining, in decode and in the stream.
    let (bos, eos) = (tokenizer.bos_id(), tokenizer.eos_id());
    let interrupted = [e6, bos, x9d, eos, xb1];
    assert_eq!(tokenizer.decode(&interrupted, true), "東");
    assert_eq!(stream(&tokenizer, &interrupted).concat(), "東");

    // An unfinished character at the end: one U+FFFD per byte, in decode and at finish.
    let mut decoder = tokenizer.stream_decoder();
    assert_eq!(decoder.push(e6), None);
    assert_eq!(decoder.push(x9d), None);
    let tail = decoder.finish();
    assert_eq!(tail, tokenizer.decode(&[e6, x9d], true));
    assert_eq!(tail, "\u{FFFD}\u{FFFD}");
}

#[test]
fn decode_without_skipping_special_tokens_keeps_their_text() {
    let tokenizer = tiny();
    for case in tokenizer_cases() {
        let ids = u32s(&case["ids"]);
        let text = case["decoded_skip_special"].as_str().expect("decoded");
        let with_special = tokenizer.decode(&ids, false);
        // The fixtures all start with BOS. Without skipping, the slow tokenizer emits "<s>",
        // then the rest as with skipping plus one space: the leading ▁ of the piece after "<s>"
        // is kept (only tokens[0], here "<s>", would lose one), and a piece without ▁ right
        // after a leading special token gets a space inserted.
        let tokens = tokenizer.tokens(&ids);
        if tokens
            .iter()
            .skip(1)
            .all(|t| !["<s>", "</s>", "<unk>"].contains(&t.as_str()))
        {
            assert_eq!(with_special, format!("<s> {text}"), "{tokens:?}");
        }
    }
}

#[test]
fn empty_chunks_and_texts() {
    let tokenizer = tiny();
    let bos = tokenizer.bos_id();
    assert_eq!(tokenizer.encode("", true).expect("encode"), [bos]);
    assert!(tokenizer.encode("", false).expect("encode").is_empty());
    let bos = i64::from(bos);
    assert_eq!(tokenizer.tokenize_prompt("").expect("prompt"), [bos]);
    assert_eq!(
        tokenizer.tokenize_prompt("<image>").expect("prompt"),
        [bos, IMAGE_TOKEN_INDEX]
    );
    assert_eq!(
        tokenizer.tokenize_prompt("<image><image>").expect("prompt"),
        [bos, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX]
    );
    assert_eq!(tokenizer.decode(&[], true), "");
    assert_eq!(tokenizer.decode(&[tokenizer.bos_id(), tokenizer.eos_id()], true), "");
    assert_eq!(tokenizer.stream_decoder().finish(), "");
    // Ids outside the vocabulary are ignored by decode and give <unk> as a piece.
    let outside = u32::try_from(tokenizer.vocab_size()).expect("vocab size") + 7;
    assert_eq!(tokenizer.decode(&[outside], true), "");
    assert_eq!(tokenizer.tokens(&[outside]), ["<unk>"]);
}

#[test]
fn python_strip_strips_what_python_strips() {
    // Python's str.isspace() characters (CPython `_PyUnicode_IsWhitespace`, Unicode 15).
    let python: Vec<char> = [
        0x09u32, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
        0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
    ]
    .into_iter()
    .filter_map(char::from_u32)
    .collect();
    for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
        let padded = format!("{c}x{c}");
        let expected = if python.contains(&c) { "x" } else { padded.as_str() };
        assert_eq!(python_strip(&padded), expected, "U+{:04X}", u32::from(c));
    }
    assert_eq!(python_strip("\u{1c}\u{85} a b \u{3000}\u{1f}"), "a b");
    assert_eq!(python_strip("\u{200b}a\u{feff}"), "\u{200b}a\u{feff}");
    assert_eq!(python_strip(" \u{FFFD} "), "\u{FFFD}");
    assert_eq!(python_strip(""), "");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dam-llm-tokenizer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

#[test]
fn missing_and_broken_files_are_reported() {
    let dir = temp_dir("missing");
    let error = DamTokenizer::from_dir(&dir).expect_err("empty folder");
    assert!(
        matches!(&error, TokenizerError::MissingFile { path } if path.ends_with("tokenizer.model")),
        "{error}"
    );
    assert!(error.to_string().contains(&dir.display().to_string()), "{error}");

    std::fs::write(dir.join("tokenizer.model"), b"this is not a sentencepiece model").expect("write");
    let error = DamTokenizer::from_dir(&dir).expect_err("garbage model");
    assert!(matches!(error, TokenizerError::Protobuf { .. }), "{error}");

    let model = std::fs::read(llm_dir().join("tokenizer.model")).expect("read model");
    // Protobuf merges a repeated sub-message: appending `trainer_spec { model_type: UNIGRAM }`
    // turns the fixture into a unigram model.
    let mut unigram = model.clone();
    unigram.extend_from_slice(&[0x12, 0x02, 0x18, 0x01]);
    std::fs::write(dir.join("tokenizer.model"), &unigram).expect("write");
    let error = DamTokenizer::from_dir(&dir).expect_err("unigram");
    assert!(
        matches!(&error, TokenizerError::Unsupported { what, .. } if what.contains("unigram")),
        "{error}"
    );

    // `normalizer_spec { remove_extra_whitespaces: true }`.
    let mut collapsing = model.clone();
    collapsing.extend_from_slice(&[0x1a, 0x02, 0x20, 0x01]);
    std::fs::write(dir.join("tokenizer.model"), &collapsing).expect("write");
    let error = DamTokenizer::from_dir(&dir).expect_err("remove_extra_whitespaces");
    assert!(matches!(error, TokenizerError::Unsupported { .. }), "{error}");

    // The unmodified model loads without any configuration file (LLaMA defaults).
    std::fs::write(dir.join("tokenizer.model"), &model).expect("write");
    let bare = DamTokenizer::from_dir(&dir).expect("bare model");
    let full = tiny();
    for case in tokenizer_cases() {
        let text = case["text"].as_str().expect("text");
        assert_eq!(
            bare.encode(text, true).expect("encode"),
            full.encode(text, true).expect("encode")
        );
    }

    // A malformed configuration is an error naming the file.
    std::fs::write(dir.join("tokenizer_config.json"), b"{\"add_bos_token\": 3}").expect("write");
    let error = DamTokenizer::from_dir(&dir).expect_err("bad config");
    assert!(
        matches!(&error, TokenizerError::Config { path, .. } if path.ends_with("tokenizer_config.json")),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokenizer_json_is_preferred_when_present() {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{AddedToken, Tokenizer};

    let vocab = [
        ("<unk>", 0u32),
        ("<s>", 1),
        ("</s>", 2),
        ("hello", 3),
        ("world", 4),
        ("ASSISTANT", 5),
    ]
    .into_iter()
    .map(|(t, i)| (t.to_owned(), i))
    .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token("<unk>".into())
        .build()
        .expect("word level");
    let mut fast = Tokenizer::new(model);
    fast.with_pre_tokenizer(Some(Whitespace {}));
    fast.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("<s> $A")
            .expect("template")
            .special_tokens(vec![("<s>", 1)])
            .build()
            .expect("post-processor"),
    ));
    fast.add_special_tokens([
        AddedToken::from("<unk>", true),
        AddedToken::from("<s>", true),
        AddedToken::from("</s>", true),
    ])
    .expect("add special tokens");
    let dir = temp_dir("json");
    fast.save(dir.join("tokenizer.json"), false)
        .expect("save tokenizer.json");
    // A tokenizer.model beside it is ignored by from_dir.
    std::fs::copy(llm_dir().join("tokenizer.model"), dir.join("tokenizer.model")).expect("copy");
    std::fs::copy(
        llm_dir().join("special_tokens_map.json"),
        dir.join("special_tokens_map.json"),
    )
    .expect("copy");

    let tokenizer = DamTokenizer::from_dir(&dir).expect("load tokenizer.json");
    assert_eq!(tokenizer.vocab_size(), 6);
    assert_eq!(
        (
            tokenizer.unk_id(),
            tokenizer.bos_id(),
            tokenizer.eos_id(),
            tokenizer.pad_id()
        ),
        (0, 1, 2, 0)
    );
    let expected = fast.encode("hello world", true).expect("encode").get_ids().to_vec();
    assert_eq!(tokenizer.encode("hello world", true).expect("encode"), expected);
    assert_eq!(tokenizer.tokens(&expected), ["<s>", "hello", "world"]);
    assert_eq!(
        tokenizer.decode(&expected, true),
        fast.decode(&expected, true).expect("decode")
    );
    let prompt = tokenizer
        .tokenize_prompt("hello <image> world <image><image>")
        .expect("prompt");
    assert_eq!(
        prompt,
        [1, 3, IMAGE_TOKEN_INDEX, 4, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX]
    );
    let ids = [3, 1, 4, 2, 5];
    assert_eq!(stream(&tokenizer, &ids).concat(), tokenizer.decode(&ids, true));

    // The SentencePiece model can still be loaded explicitly.
    let spm = DamTokenizer::from_sentencepiece_model(&dir.join("tokenizer.model")).expect("tokenizer.model");
    assert_eq!(spm.vocab_size(), tiny().vocab_size());
    let _ = std::fs::remove_dir_all(&dir);
}

/// dam-spec §6.4: ids computed for the real LLaMA-2 vocabulary.
#[test]
fn llama2_reference_ids_when_available() {
    let Some(path) = std::env::var_os("DAM_LLAMA_TOKENIZER") else {
        println!(
            "skipped: set DAM_LLAMA_TOKENIZER to a LLaMA-2 tokenizer.model to check the dam-spec §6.4 ids \
             (the real 32000-piece vocabulary is not bundled)"
        );
        return;
    };
    let tokenizer = DamTokenizer::from_sentencepiece_model(Path::new(&path)).expect("load DAM_LLAMA_TOKENIZER");
    assert_eq!(tokenizer.vocab_size(), 32000);
    assert_eq!((tokenizer.unk_id(), tokenizer.bos_id(), tokenizer.eos_id()), (0, 1, 2));

    let system = "A chat between a curious user and an artificial intelligence assistant. The assistant gives \
                  helpful, detailed, and polite answers to the user's questions.";
    // conv_vicuna_v1: system + " " + "USER: " + query + " " + "ASSISTANT:".
    let prompt = |query: &str| format!("{system} USER: {query} ASSISTANT:");

    let prefix: [u32; 35] = [
        1, 319, 13563, 1546, 263, 12758, 1404, 322, 385, 23116, 21082, 20255, 29889, 450, 20255, 4076, 8444, 29892,
        13173, 29892, 322, 1248, 568, 6089, 304, 278, 1404, 29915, 29879, 5155, 29889, 3148, 1001, 29901, 29871,
    ];
    let suffix: [u32; 16] = [
        29871, 13, 4002, 29581, 278, 11105, 287, 5120, 297, 9493, 29889, 319, 1799, 9047, 13566, 29901,
    ];
    assert_eq!(
        tokenizer.encode(&format!("{system} USER: "), true).expect("encode"),
        prefix
    );
    assert_eq!(tokenizer.tokens(&prefix[31..]), ["▁US", "ER", ":", "▁"]);
    let after = tokenizer
        .encode("\nDescribe the masked region in detail. ASSISTANT:", true)
        .expect("encode");
    assert_eq!(after[1..], suffix);
    assert_eq!(
        tokenizer.tokens(&suffix),
        [
            "▁",
            "<0x0A>",
            "Des",
            "cribe",
            "▁the",
            "▁mask",
            "ed",
            "▁region",
            "▁in",
            "▁detail",
            ".",
            "▁A",
            "SS",
            "IST",
            "ANT",
            ":"
        ]
    );
    let input_ids = tokenizer
        .tokenize_prompt(&prompt("<image>\nDescribe the masked region in detail."))
        .expect("prompt");
    let expected: Vec<i64> = prefix
        .iter()
        .map(|&id| i64::from(id))
        .chain([IMAGE_TOKEN_INDEX])
        .chain(suffix.iter().map(|&id| i64::from(id)))
        .collect();
    assert_eq!(input_ids.len(), 52);
    assert_eq!(input_ids, expected);

    // DAM-3B-Video prefixes (37 ids each).
    let image_prefix = tokenizer
        .encode(&format!("{system} USER: Image: "), true)
        .expect("encode");
    assert_eq!(image_prefix.len(), 37);
    assert_eq!(image_prefix[..31], prefix[..31]);
    assert_eq!(image_prefix[31..], [3148, 1001, 29901, 7084, 29901, 29871]);
    let video_prefix = tokenizer
        .encode(&format!("{system} USER: Video: "), true)
        .expect("encode");
    assert_eq!(video_prefix.len(), 37);
    assert_eq!(video_prefix[34..], [13987, 29901, 29871]);

    // Video: 37 + 8 sentinels + 35.
    let video_query = format!(
        "Video: {}\nGiven the video in the form of a sequence of frames above, describe the object in the masked \
         region in the video in detail.",
        "<image>".repeat(8)
    );
    let video = tokenizer.tokenize_prompt(&prompt(&video_query)).expect("video prompt");
    assert_eq!(video.len(), 37 + 8 + 35);
    let video_prefix: Vec<i64> = video_prefix.iter().map(|&id| i64::from(id)).collect();
    assert_eq!(video[..37], video_prefix[..]);
    assert!(video[37..45].iter().all(|&id| id == IMAGE_TOKEN_INDEX));
    assert_eq!(video[45..51], [29871, 13, 29954, 5428, 278, 4863]);

    // Joint image question chunk (DLC-Bench `--query-key joint`).
    let joint = tokenizer
        .tokenize_prompt(&prompt(
            "Image: <image>\nGiven the image above, describe the object in the masked region.",
        ))
        .expect("joint prompt");
    let joint_question = [
        29871, 13, 29954, 5428, 278, 1967, 2038, 29892, 8453, 278, 1203, 297, 278, 11105, 287, 5120, 29889, 319, 1799,
        9047, 13566, 29901,
    ];
    assert_eq!(joint.len(), 37 + 1 + 22);
    assert_eq!(joint[37], IMAGE_TOKEN_INDEX);
    assert_eq!(joint[38..], joint_question);

    // Decoding back (the caller strips).
    let question = &joint[38..];
    let question: Vec<u32> = question.iter().map(|&id| u32::try_from(id).expect("id")).collect();
    assert_eq!(
        python_strip(&tokenizer.decode(&question, true)),
        "Given the image above, describe the object in the masked region. ASSISTANT:"
    );
}

/// Development cross-check against an external dump (see the file's documentation).
#[test]
fn parity_dump_when_available() {
    let Some(path) = std::env::var_os("DAM_TOKENIZER_PARITY") else {
        println!("skipped: set DAM_TOKENIZER_PARITY to a parity dump JSON to compare many more strings");
        return;
    };
    let dump = read_json(Path::new(&path));
    let model = dump["model"].as_str().expect("model path");
    let tokenizer = DamTokenizer::from_sentencepiece_model(Path::new(model)).expect("load model");
    let mut failures = Vec::new();
    let encode = dump["encode"].as_array().cloned().unwrap_or_default();
    for case in &encode {
        let text = case["text"].as_str().expect("text");
        let ids = tokenizer.encode(text, true).expect("encode");
        if ids != u32s(&case["ids"]) {
            failures.push(format!("encode {text:?}: got {ids:?}, want {}", case["ids"]));
        }
    }
    let decode = dump["decode"].as_array().cloned().unwrap_or_default();
    for case in &decode {
        let ids = u32s(&case["ids"]);
        let skip_special = case["skip_special"].as_bool().unwrap_or(true);
        let text = tokenizer.decode(&ids, skip_special);
        if text != case["text"].as_str().expect("text") {
            failures.push(format!(
                "decode {ids:?} (skip {skip_special}): got {text:?}, want {}",
                case["text"]
            ));
        }
        if !skip_special {
            continue;
        }
        let streamed: String = stream(&tokenizer, &ids).concat();
        if streamed != text {
            failures.push(format!("stream {ids:?}: got {streamed:?}, want {text:?}"));
        }
    }
    println!(
        "parity: {} encode and {} decode cases, {} failures",
        encode.len(),
        decode.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}
