-- The standard discrimination report: which biomarkers tell cases from controls, how well,
-- and how sure we are. One row per biomarker, most discriminating first (|AUC - 0.5|).
--
--   discern query -f sql/reports/discrimination.sql [--output report.csv]
--
-- Tables: measurements(sample_id, biomarker, value), samples(sample_id, is_case).
-- The Youden threshold is pROC's coords("best"): a sample is called a case when its value is
-- >= the threshold; sensitivity and specificity are those of that rule on these data. There
-- is no auto-flip: for a marker lower in cases (AUC < 0.5) no such rule beats calling everyone
-- a case (threshold -Infinity, J = 0); youden(-value, is_case) gives its "<=" threshold.
SELECT
    biomarker,
    n_case,
    n_control,
    mean_case,
    mean_control,
    median_case,
    median_control,
    log2_fold_change,
    auc['auc']   AS auc,
    auc['lower'] AS auc_lower,
    auc['upper'] AS auc_upper,
    mann_whitney_p,
    welch_p,
    p_adjust(mann_whitney_p, 'bh') OVER () AS mann_whitney_q,
    youden['threshold']   AS youden_threshold,
    youden['sensitivity'] AS youden_sensitivity,
    youden['specificity'] AS youden_specificity
FROM (
    SELECT
        m.biomarker,
        count(m.value) FILTER (WHERE s.is_case)          AS n_case,
        count(m.value) FILTER (WHERE NOT s.is_case)      AS n_control,
        avg(m.value) FILTER (WHERE s.is_case)            AS mean_case,
        avg(m.value) FILTER (WHERE NOT s.is_case)        AS mean_control,
        median(m.value) FILTER (WHERE s.is_case)         AS median_case,
        median(m.value) FILTER (WHERE NOT s.is_case)     AS median_control,
        log2_fold_change(m.value, s.is_case)             AS log2_fold_change,
        auc_ci(m.value, s.is_case)                       AS auc,
        mann_whitney(m.value, s.is_case)['p']            AS mann_whitney_p,
        welch_t_test(m.value, s.is_case)['p']            AS welch_p,
        youden(m.value, s.is_case)                       AS youden
    FROM measurements m
    JOIN samples s USING (sample_id)
    GROUP BY m.biomarker
)
ORDER BY abs(auc['auc'] - 0.5) DESC, biomarker;
