#!/usr/bin/env Rscript
# Reference values for reclassification(p_old, p_new, is_case [, cutoffs]): the NRI and IDI.
#
# Writes reclassification.json beside this file. Continuous NRI and IDI are R's
# Hmisc::improveProb(p_old, p_new, is_case) (nri, se.nri, z.nri, nri.ev, nri.ne, idi, se.idi,
# z.idi, improveSens, improveSpec), p-values 2 * pnorm(-|z|) as its print method. The
# categorical NRI (cutoffs given) is Pencina et al. (2008) on the categories of
# cut(p, c(-Inf, cutoffs, Inf)) (right-closed), computed here with the same variance formula
# improveProb uses (PredictABEL, which packages it, is not in Debian 12); its IDI fields are
# improveProb's. Rows with an NA/NaN are dropped, as improveProb does. Inputs and outputs are
# printed with %.17g; NaN / NA as null; a case R refuses (no events) has expected null.
#
# Run:  Rscript testdata/reference/reclassification.R   (Hmisc and jsonlite; versions recorded)

suppressPackageStartupMessages({ library(Hmisc); library(jsonlite) })

script_dir <- local({
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f)) dirname(normalizePath(f)) else "."
})

g <- function(x) if (is.null(x) || is.na(x) || is.nan(x)) NULL else sprintf("%.17g", x)
gv <- function(v) lapply(v, function(x) if (is.na(x) && !is.nan(x)) NULL else if (is.nan(x)) "NaN" else sprintf("%.17g", x))
pval <- function(z) if (is.na(z) || is.nan(z) || is.infinite(z) && FALSE) NULL else 2 * pnorm(-abs(z))

categorical <- function(x1, x2, y, cutoffs) {
  breaks <- c(-Inf, cutoffs, Inf)
  c1 <- as.integer(cut(x1, breaks, right = TRUE))
  c2 <- as.integer(cut(x2, breaks, right = TRUE))
  a <- y == 1; b <- y == 0
  na <- sum(a); nb <- sum(b)
  up_ev <- sum(c2[a] > c1[a]); down_ev <- sum(c2[a] < c1[a])
  up_ne <- sum(c2[b] > c1[b]); down_ne <- sum(c2[b] < c1[b])
  v_ev <- (up_ev + down_ev) / na^2 - (up_ev - down_ev)^2 / na^3
  v_ne <- (down_ne + up_ne) / nb^2 - (down_ne - up_ne)^2 / nb^3
  nri_ev <- (up_ev - down_ev) / na
  nri_ne <- (down_ne - up_ne) / nb
  se <- sqrt(v_ev + v_ne)
  list(nri = nri_ev + nri_ne, nri.ev = nri_ev, nri.ne = nri_ne, se.nri = se,
       z.nri = (nri_ev + nri_ne) / se)
}

expected <- function(x1, x2, y, cutoffs) {
  keep <- !is.na(x1 + x2 + y)
  x1 <- x1[keep]; x2 <- x2[keep]; y <- y[keep]
  r <- tryCatch(improveProb(x1, x2, y), error = function(e) NULL)
  if (is.null(r)) return(NULL)
  nri <- if (is.null(cutoffs)) r else categorical(x1, x2, y, cutoffs)
  z_nri <- if (is.finite(nri$z.nri)) nri$z.nri else NA
  z_idi <- if (is.finite(r$z.idi)) r$z.idi else NA
  list(nri = g(nri$nri), nri_events = g(nri$nri.ev), nri_nonevents = g(nri$nri.ne),
       se = g(nri$se.nri), z = g(z_nri), p = g(if (is.na(z_nri)) NA else 2 * pnorm(-abs(z_nri))),
       idi = g(r$idi), idi_se = g(r$se.idi), idi_z = g(z_idi),
       idi_p = g(if (is.na(z_idi)) NA else 2 * pnorm(-abs(z_idi))),
       improve_sensitivity = g(r$improveSens), improve_specificity = g(r$improveSpec))
}

case <- function(name, x1, x2, y, cutoffs = NULL) {
  list(name = name, p_old = gv(x1), p_new = gv(x2),
       is_case = lapply(y, function(v) if (is.na(v)) NULL else v == 1),
       cutoffs = if (is.null(cutoffs)) NULL else lapply(cutoffs, g),
       expected = expected(x1, x2, y, cutoffs))
}

# A clinical model (age, sex) and the same with a biomarker, fitted by glm on simulated data.
set.seed(20261202)
n <- 400
age <- rnorm(n, 55, 10); sex <- rbinom(n, 1, 0.5); marker <- rnorm(n)
y <- rbinom(n, 1, plogis(-4 + 0.05 * age + 0.3 * sex + 0.9 * marker))
p_old <- unname(fitted(glm(y ~ age + sex, family = binomial)))
p_new <- unname(fitted(glm(y ~ age + sex + marker, family = binomial)))

cases <- list(
  case("clinical model and the model with a biomarker (continuous)", p_old, p_new, y),
  case("clinical model and the model with a biomarker, cutoffs 0.1 and 0.3", p_old, p_new, y,
       c(0.1, 0.3)),
  case("three categories, risks on the cutoffs (right-closed)",
       c(0.1, 0.2, 0.3, 0.05, 0.35, 0.1, 0.29, 0.31),
       c(0.3, 0.1, 0.31, 0.1, 0.3, 0.1000001, 0.3, 0.2), c(1, 1, 1, 1, 0, 0, 0, 0),
       c(0.1, 0.3)),
  case("ties: unchanged risks count as neither up nor down",
       c(0.2, 0.4, 0.4, 0.6, 0.1, 0.3, 0.5, 0.5, 0.2),
       c(0.3, 0.4, 0.5, 0.6, 0.1, 0.2, 0.5, 0.6, 0.1), c(1, 1, 1, 1, 0, 0, 0, 0, 0)),
  case("nothing moves: standard errors 0, no z",
       c(0.2, 0.4, 0.1, 0.3), c(0.2, 0.4, 0.1, 0.3), c(1, 1, 0, 0)),
  case("one event: no IDI variance", c(0.2, 0.1, 0.3, 0.25), c(0.5, 0.05, 0.2, 0.3), c(1, 0, 0, 0)),
  case("NA and NaN rows are dropped",
       c(0.2, NA, 0.4, 0.1, NaN, 0.3, 0.6), c(0.3, 0.5, 0.35, 0.2, 0.4, NA, 0.2),
       c(1, 1, 1, 0, 0, 0, NA)),
  case("no events", c(0.2, 0.1), c(0.3, 0.2), c(0, 0))
)

out <- list(
  generated_by = "testdata/reference/reclassification.R",
  versions = list(R = R.version.string, Hmisc = as.character(packageVersion("Hmisc"))),
  cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, null = "null", pretty = TRUE),
           file.path(script_dir, "reclassification.json"))
cat(sprintf("wrote %d cases\n", length(cases)))
