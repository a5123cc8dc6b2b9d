"""Page complexity scoring: pure numpy / scikit-image functions of page pixels.

`compute_features(gray, dpi)` measures what makes a page hard to read; `complexity_score`
folds the features into 0..10 with weights from config. Nothing here may import from gateway,
providers or router.
"""
