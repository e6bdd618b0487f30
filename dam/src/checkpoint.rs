//! Where a checkpoint lives: a local folder (always works offline) or, with the `hub` feature,
//! a Hugging Face id such as `nvidia/DAM-3B` resolved through the `hf-hub` cache (downloaded
//! once, with a progress bar).

use std::path::{Path, PathBuf};

use crate::error::{DamError, Result};

/// What to fetch for a hub checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A DAM checkpoint (`nvidia/DAM-3B`, `nvidia/DAM-3B-Video`).
    Dam,
    /// A transformers SAM checkpoint (`facebook/sam-vit-huge`).
    Sam,
}

/// Resolves `spec` (a folder, or a hub id with the `hub` feature) to a DAM checkpoint folder.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    resolve_kind(spec, CheckpointKind::Dam)
}

/// Resolves `spec` to a checkpoint folder of the given kind.
pub fn resolve_kind(spec: &str, kind: CheckpointKind) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    #[cfg(feature = "hub")]
    if looks_like_hub_id(spec) {
        return hub::download(spec, kind);
    }
    let _ = kind;
    let hint = if cfg!(feature = "hub") {
        " nor a Hugging Face id (owner/name)"
    } else {
        "; Hugging Face ids need the `hub` feature"
    };
    Err(DamError::CheckpointNotFound {
        spec: spec.to_string(),
        hint,
    })
}

/// `owner/name` with no further slashes and no leading `.` or `/`.
pub fn looks_like_hub_id(spec: &str) -> bool {
    let mut parts = spec.split('/');
    let ok = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && !s.starts_with('.'));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(feature = "hub")]
mod hub {
    use std::path::PathBuf;

    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    use super::CheckpointKind;
    use crate::error::{DamError, Result};

    /// Files a SAM checkpoint needs.
    const SAM_FILES: &[&str] = &["config.json", "model.safetensors", "preprocessor_config.json"];

    /// Files a DAM checkpoint needs (LLM shards are read from the index).
    const FILES: &[&str] = &[
        "config.json",
        "vision_tower/config.json",
        "vision_tower/preprocessor_config.json",
        "vision_tower/model.safetensors",
        "context_provider/config.json",
        "context_provider/model.safetensors",
        "mm_projector/config.json",
        "mm_projector/model.safetensors",
        "llm/config.json",
        "llm/tokenizer.model",
        "llm/tokenizer_config.json",
        "llm/special_tokens_map.json",
    ];

    fn err(id: &str, reason: impl std::fmt::Display) -> DamError {
        DamError::Hub {
            id: id.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Downloads (or finds in the cache) every file and returns the snapshot folder.
    pub fn download(id: &str, kind: CheckpointKind) -> Result<PathBuf> {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1");
        let cache = Cache::from_env();
        let cached = cache.repo(Repo::new(id.to_string(), RepoType::Model));
        let api = if offline {
            None
        } else {
            Some(
                ApiBuilder::from_env()
                    .with_progress(true)
                    .build()
                    .map_err(|e| err(id, e))?
                    .model(id.to_string()),
            )
        };
        let fetch = |file: &str| -> Result<PathBuf> {
            if let Some(p) = cached.get(file) {
                return Ok(p);
            }
            match &api {
                Some(api) => {
                    eprintln!("dam: fetching {id}/{file}");
                    api.get(file).map_err(|e| err(id, format!("{file}: {e}")))
                }
                None => Err(err(id, format!("{file} is not in the cache and HF_HUB_OFFLINE=1"))),
            }
        };
        let mut top = None;
        let files = match kind {
            CheckpointKind::Dam => FILES,
            CheckpointKind::Sam => SAM_FILES,
        };
        for file in files {
            let p = fetch(file)?;
            if *file == "config.json" {
                top = p.parent().map(PathBuf::from);
            }
        }
        if kind == CheckpointKind::Sam {
            return top.ok_or_else(|| err(id, "no snapshot folder"));
        }
        // The LLM weights: sharded (index) or one file.
        match fetch("llm/model.safetensors.index.json") {
            Ok(index) => {
                let text = std::fs::read_to_string(&index).map_err(|e| err(id, e))?;
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(id, e))?;
                let mut shards: Vec<String> = v["weight_map"]
                    .as_object()
                    .map(|m| m.values().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                shards.sort();
                shards.dedup();
                for shard in shards {
                    fetch(&format!("llm/{shard}"))?;
                }
            }
            Err(_) => {
                fetch("llm/model.safetensors")?;
            }
        }
        let _ = fetch("llm/generation_config.json");
        top.ok_or_else(|| err(id, "no snapshot folder"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_folders() {
        assert!(looks_like_hub_id("nvidia/DAM-3B"));
        assert!(!looks_like_hub_id("./ckpt"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("DAM-3B"));
        assert!(matches!(
            resolve("/nonexistent/dir/x"),
            Err(DamError::CheckpointNotFound { .. })
        ));
    }
}
