//! SentencePiece `tokenizer.model` → `tokenizers` BPE, matching the slow `LlamaTokenizer`.
