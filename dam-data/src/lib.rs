//! Datasets for DAM (planned, nothing implemented yet): COCO RLE masks, the DLC-Bench loader and
//! scorer, and DLC-SDP, the semi-supervised data pipeline that expands segmentation datasets
//! and unlabeled images into localized descriptions.
