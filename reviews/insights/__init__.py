"""What the rollups say, one module per question a manager asks: how many and how decided
(summaries), how well agents know their confidence (calibration), what reviewers change
(patterns), how reviewers work (reviewers), whether a category can run without a human
(readiness), what its errors would cost without a person (damage), and whether two
reviewers agree (agreement). Threshold advice is in
reviews.advice. They read rollup rows (never all decisions); pure arithmetic where possible.
"""
