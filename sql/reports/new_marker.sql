-- Does a biomarker add anything to what the clinic already knows? For each biomarker, a
-- clinical logistic model (age and sex) is fitted with and without the biomarker, on the
-- samples where the biomarker was measured, and the two models' risks are compared: their
-- AUCs and DeLong's paired test of the difference, the likelihood-ratio test of the
-- biomarker's coefficient (1 degree of freedom), and reclassification (continuous NRI and
-- IDI, Pencina; R's Hmisc::improveProb). One row per biomarker, largest NRI first; the
-- biomarkers whose fits did not converge (separated data) are left out.
--
--   discern query -f sql/reports/new_marker.sql [--output new_marker.csv]
--
-- Tables: measurements(sample_id, biomarker, value), samples(sample_id, is_case, age, sex).
WITH data AS (
    SELECT m.biomarker, m.value, s.is_case,
           CAST(s.age AS DOUBLE) AS age,
           CASE WHEN s.sex = 'F' THEN 1.0 ELSE 0.0 END AS female
    FROM measurements m JOIN samples s USING (sample_id)
    WHERE m.value IS NOT NULL AND s.age IS NOT NULL AND s.sex IS NOT NULL
),
fits AS (
    SELECT biomarker,
           logistic_regression(is_case, age, female)['coef']        AS clinical,
           logistic_regression(is_case, age, female, value)['coef'] AS full
    FROM data
    GROUP BY biomarker
),
risks AS (
    SELECT d.biomarker, d.is_case,
           1 / (1 + exp(-(f.clinical[1] + f.clinical[2] * d.age + f.clinical[3] * d.female)))
               AS p_clinical,
           1 / (1 + exp(-(f.full[1] + f.full[2] * d.age + f.full[3] * d.female
                          + f.full[4] * d.value)))
               AS p_full
    FROM data d JOIN fits f USING (biomarker)
    WHERE f.clinical IS NOT NULL AND f.full IS NOT NULL
),
compared AS (
    SELECT biomarker,
           count(*) FILTER (WHERE is_case)      AS n_case,
           count(*) FILTER (WHERE NOT is_case)  AS n_control,
           auc(p_clinical, is_case)             AS auc_clinical,
           auc(p_full, is_case)                 AS auc_with_marker,
           roc_test(p_full, p_clinical, is_case) AS roc,
           -- Binomial log-likelihoods of the two fits; their difference is the LR statistic.
           2 * sum(CASE WHEN is_case THEN ln(p_full) - ln(p_clinical)
                        ELSE ln(1 - p_full) - ln(1 - p_clinical) END) AS lr_chi2,
           reclassification(p_clinical, p_full, is_case) AS r
    FROM risks
    GROUP BY biomarker
)
SELECT biomarker, n_case, n_control,
       auc_clinical, auc_with_marker,
       roc['p']                        AS roc_test_p,
       lr_chi2,
       chi2_sf(greatest(lr_chi2, 0), 1) AS lr_p,
       r['nri']                        AS nri,
       r['p']                          AS nri_p,
       r['idi']                        AS idi,
       r['idi_p']                      AS idi_p
FROM compared
ORDER BY nri DESC, biomarker;
