#!/usr/bin/env Rscript
# Reference values for roc_power and roc_sample_size: the power of the test that a ROC curve's AUC is 0.5, as
# pROC's power.roc.test(auc =, ncases =, ncontrols =, sig.level =) computes it (Obuchowski and
# McClish's variance, two-sided: sig.level / 2 in each tail).
#
# Writes power.json beside this file: one case per (auc, n_cases, n_controls, sig_level) of a
# grid that spans small and large studies, AUCs on both sides of 0.5, power near 0 and near 1.
# Inputs and outputs are printed with %.17g (exact doubles); NaN as null. "curves" holds the
# roc_sample_size cases: each curve's values and pROC's sample sizes at three (power,
# sig.level) pairs.
#
# Run:  Rscript testdata/reference/power.R   (pROC and jsonlite; versions are recorded)

suppressPackageStartupMessages({ library(pROC); library(jsonlite) })

script_dir <- local({
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f)) dirname(normalizePath(f)) else "."
})

g <- function(x) if (is.na(x)) NULL else sprintf("%.17g", x)

grid <- expand.grid(
  auc = c(0.3, 0.5, 0.51, 0.55, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99),
  n_cases = c(5, 20, 100, 1000),
  n_controls = c(5, 40, 300, 5000),
  sig_level = c(0.05, 0.01, 0.001))

cases <- lapply(seq_len(nrow(grid)), function(i) {
  row <- grid[i, ]
  r <- power.roc.test(auc = row$auc, ncases = row$n_cases, ncontrols = row$n_controls,
                      sig.level = row$sig_level)
  list(auc = g(row$auc), n_cases = g(row$n_cases), n_controls = g(row$n_controls),
       sig_level = g(row$sig_level), power = g(r$power))
})

# roc_sample_size: power.roc.test(roc, power =, sig.level =) on curves of simulated values
# (roc(controls, cases, direction = "<"), no auto-flip), ties included.
set.seed(11)
curve <- function(name, n_case, n_control, shift, digits = NA) {
  cases <- rnorm(n_case, shift)
  controls <- rnorm(n_control)
  if (!is.na(digits)) { cases <- signif(cases, digits); controls <- signif(controls, digits) }
  r <- roc(controls = controls, cases = cases, direction = "<", quiet = TRUE)
  sizes <- lapply(list(c(0.8, 0.05), c(0.9, 0.05), c(0.9, 0.01)), function(ps) {
    s <- power.roc.test(r, power = ps[1], sig.level = ps[2])
    list(power = g(ps[1]), sig_level = g(ps[2]), n_cases = g(s$ncases),
         n_controls = g(s$ncontrols))
  })
  list(name = name, cases = lapply(cases, g), controls = lapply(controls, g),
       auc = g(as.numeric(auc(r))), sizes = sizes)
}
curves <- list(
  curve("40 cases, 80 controls, shift 0.8", 40, 80, 0.8),
  curve("25 cases, 25 controls, shift 0.4", 25, 25, 0.4),
  curve("60 cases, 300 controls, shift 1.5", 60, 300, 1.5),
  curve("30 cases, 90 controls, shift -0.6 (AUC below 0.5)", 30, 90, -0.6),
  curve("50 cases, 100 controls, 2 significant digits (ties)", 50, 100, 0.7, digits = 2))

out <- list(
  generated_by = "testdata/reference/power.R",
  versions = list(R = R.version.string, pROC = as.character(packageVersion("pROC"))),
  cases = cases, curves = curves)
writeLines(toJSON(out, auto_unbox = TRUE, null = "null", pretty = TRUE),
           file.path(script_dir, "power.json"))
cat(sprintf("wrote %d cases to %s\n", length(cases), file.path(script_dir, "power.json")))
