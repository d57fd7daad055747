#!/usr/bin/env Rscript
# Reference values for roc_test_unpaired(value, is_case, in_second): DeLong's test for two ROC
# curves on independent samples, R's pROC::roc.test(ra, rb, method = "delong",
# paired = FALSE) with ra / rb = roc(controls, cases, direction = "<") (no auto-flip).
#
# Writes roc_unpaired.json beside this file: per case the values of both curves (%.17g) and
# pROC's auc_a, auc_b (estimate), d (statistic D), df (parameter) and p (p.value).
#
# Run:  Rscript testdata/reference/roc_unpaired.R   (pROC and jsonlite; versions recorded)

suppressPackageStartupMessages({ library(pROC); library(jsonlite) })

script_dir <- local({
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f)) dirname(normalizePath(f)) else "."
})

g <- function(x) if (is.na(x)) NULL else sprintf("%.17g", x)

set.seed(2026)
pair <- function(name, n1a, n0a, shift_a, n1b, n0b, shift_b, digits = NA) {
  make <- function(n, shift) {
    x <- rnorm(n, shift)
    if (!is.na(digits)) signif(x, digits) else x
  }
  ca <- make(n1a, shift_a); ka <- make(n0a, 0)
  cb <- make(n1b, shift_b); kb <- make(n0b, 0)
  ra <- roc(controls = ka, cases = ca, direction = "<", quiet = TRUE)
  rb <- roc(controls = kb, cases = cb, direction = "<", quiet = TRUE)
  t <- roc.test(ra, rb, method = "delong", paired = FALSE)
  list(name = name,
       a = list(cases = lapply(ca, g), controls = lapply(ka, g)),
       b = list(cases = lapply(cb, g), controls = lapply(kb, g)),
       expected = list(auc_a = g(unname(t$estimate[1])), auc_b = g(unname(t$estimate[2])),
                       d = g(unname(t$statistic)), df = g(unname(t$parameter)),
                       p = g(t$p.value)))
}

cases <- list(
  pair("two cohorts, different sizes", 40, 80, 1.0, 25, 60, 0.4),
  pair("same effect, p near 1", 50, 50, 0.8, 60, 40, 0.8),
  pair("strong difference", 100, 200, 2.0, 80, 160, 0.2),
  pair("small curves", 5, 6, 1.0, 4, 7, 0.0),
  pair("ties (2 significant digits)", 60, 90, 0.9, 70, 70, 0.3, digits = 2),
  pair("a curve below 0.5", 30, 30, -0.7, 30, 30, 0.7))

out <- list(
  generated_by = "testdata/reference/roc_unpaired.R",
  versions = list(R = R.version.string, pROC = as.character(packageVersion("pROC"))),
  cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, null = "null", pretty = TRUE),
           file.path(script_dir, "roc_unpaired.json"))
cat(sprintf("wrote %d cases\n", length(cases)))
