//! Segment Anything v1 (transformers' `SamModel` / `SamProcessor`) on burn.
