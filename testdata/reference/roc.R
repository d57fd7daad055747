#!/usr/bin/env Rscript
# Reference values for the ROC functions (youden, sensitivity_at_specificity,
# specificity_at_sensitivity, partial_auc, roc_curve, roc_test), computed with R's pROC.
#
# Writes roc.json beside this file. Each case holds the inputs (value as decimal strings that
# round-trip exactly, printed with sprintf("%.17g"), or null / "NaN" / "Infinity" / "-Infinity"
# for rows to skip; is_case as true / false / null) and the pROC results on the rows that remain
# (a row is skipped if its value is not finite or its label is NULL; in paired cases if either
# value is not finite or the label is NULL):
#
#   r <- roc(controls = value[!is_case], cases = value[is_case], direction = "<")
#        (no auto-flip: positive if value >= threshold)
#   youden_all: coords(r, "best", best.method = "youden",
#                      ret = c("threshold", "sensitivity", "specificity")), every row pROC
#               returns, in pROC's order, with j = sensitivity + specificity - 1
#   youden:     the row of youden_all with the smallest threshold
#   sensitivity_at_specificity[key]: coords(r, x, input = "specificity", ret = "sensitivity"),
#               keys "0.9", "0.5", "0.95", "1", "0" and one attained specificity printed %.17g
#   specificity_at_sensitivity[key]: likewise with input = "sensitivity"
#   partial_auc: auc(r, partial.auc = c(spec_high, spec_low), partial.auc.focus = "specificity",
#                    partial.auc.correct = mcclish); null where pROC returns NA
#   roc_curve:   coords(r, "all", ret = c("threshold", "sensitivity", "specificity")) in pROC's
#                order (threshold ascending, from -Inf to +Inf)
#   auc:         the full AUC (extra, for cross-checks)
#   roc_test:    roc.test(ra, rb, method = "delong", paired = TRUE, conf.level = 0.95):
#                auc_a, auc_b = estimate, z = statistic, p = p.value,
#                diff_lower, diff_upper = conf.int (of auc_a - auc_b)
#
# Output numbers are printed with %.17g (exact). A non-finite result is written as the string
# "Infinity" / "-Infinity" (thresholds at the ends of the curve, an infinite z), NaN / NA as null.
# If a group is empty (pROC stops with an error) every expected entry is null; if roc.test
# stops with an error, roc_test is null and roc_test_error holds pROC's message.
#
# Run:  Rscript testdata/reference/roc.R   (from any directory; pROC, versions are recorded)

suppressPackageStartupMessages(library(pROC))

script_dir <- local({
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1) dirname(normalizePath(f)) else getwd()
})

# ---------------------------------------------------------------- JSON writer (exact numbers)
num <- function(x) {
  stopifnot(length(x) == 1)
  if (is.na(x)) return("null")  # NA and NaN
  if (is.infinite(x)) return(if (x > 0) "\"Infinity\"" else "\"-Infinity\"")
  sprintf("%.17g", x)
}
str_json <- function(s) {
  s <- gsub("\\\\", "\\\\\\\\", s)
  s <- gsub("\"", "\\\\\"", s)
  paste0("\"", s, "\"")
}
is_scalar_leaf <- function(x) is.null(x) || (is.atomic(x) && length(x) == 1)
to_json <- function(x, indent = 0) {
  pad <- strrep(" ", indent + 1)
  end <- strrep(" ", indent)
  if (is.null(x)) return("null")
  if (is.atomic(x)) {
    stopifnot(length(x) == 1)
    if (is.logical(x)) return(if (is.na(x)) "null" else if (x) "true" else "false")
    if (is.character(x)) return(if (is.na(x)) "null" else str_json(x))
    return(num(as.numeric(x)))
  }
  stopifnot(is.list(x))
  if (!is.null(names(x))) {
    if (length(x) == 0) return("{}")
    items <- vapply(seq_along(x), function(i)
      paste0(pad, str_json(names(x)[i]), ": ", to_json(x[[i]], indent + 1)), "")
    return(paste0("{\n", paste(items, collapse = ",\n"), "\n", end, "}"))
  }
  if (length(x) == 0) return("[]")
  if (all(vapply(x, is_scalar_leaf, TRUE))) {
    return(paste0("[", paste(vapply(x, to_json, ""), collapse = ", "), "]"))
  }
  items <- vapply(x, function(e) paste0(pad, to_json(e, indent + 1)), "")
  paste0("[\n", paste(items, collapse = ",\n"), "\n", end, "]")
}

# Inputs: decimal strings with 17 significant digits (exact), null for NA, names for non-finite.
encode <- function(v) {
  lapply(v, function(x) {
    if (is.na(x) && !is.nan(x)) return(NULL)
    if (is.nan(x)) return("NaN")
    if (is.infinite(x)) return(if (x > 0) "Infinity" else "-Infinity")
    sprintf("%.17g", x)
  })
}
encode_labels <- function(l) lapply(l, function(x) if (is.na(x)) NA else x)

# ---------------------------------------------------------------- pROC calls
build_roc <- function(controls, cases) {
  roc(controls = controls, cases = cases, direction = "<", quiet = TRUE)
}

spec_points <- c("0.9" = 0.9, "0.5" = 0.5, "0.95" = 0.95, "1" = 1, "0" = 0)
pauc_ranges <- list(c(0.8, 1), c(0.9, 1), c(0.5, 0.9), c(0, 1), c(0.61, 0.62), c(0, 0.3))

# An attained value of a coordinate in (0, 1), other than the fixed points: the one shared by the most curve points
# (a vertical / horizontal segment if there is one), ties broken by closeness to 0.5.
attained <- function(v) {
  inner <- v[v > 0 & v < 1 & !(v %in% spec_points)]
  if (length(inner) == 0) return(NULL)
  tab <- table(sprintf("%.17g", inner))
  vals <- as.numeric(names(tab))  # only used to choose; the value itself comes from v
  cnt <- as.vector(tab)
  keys <- names(tab)
  o <- order(-cnt, abs(vals - 0.5))
  key <- keys[o[1]]
  v[match(key, sprintf("%.17g", v))]
}

at_points <- function(r, input, ret, attained_value) {
  xs <- spec_points
  if (!is.null(attained_value)) {
    k <- sprintf("%.17g", attained_value)
    if (!(k %in% names(xs)) && !(attained_value %in% xs)) xs <- c(xs, setNames(attained_value, k))
  }
  out <- list()
  for (k in names(xs)) {
    res <- coords(r, x = unname(xs[k]), input = input, ret = ret, transpose = FALSE)
    out[[k]] <- res[[ret]][1]
  }
  out
}

pauc_all <- function(r) {
  out <- list()
  for (rg in pauc_ranges) {
    for (mc in c(FALSE, TRUE)) {
      val <- withCallingHandlers(
        as.numeric(auc(r, partial.auc = c(rg[2], rg[1]), partial.auc.focus = "specificity",
                       partial.auc.correct = mc)),
        warning = function(w) invokeRestart("muffleWarning"))
      out[[length(out) + 1]] <- list(spec_low = rg[1], spec_high = rg[2], mcclish = mc,
                                     value = val)
    }
  }
  out
}

expected_single <- function(value, is_case) {
  keep <- !is.na(is_case) & is.finite(value)
  v <- value[keep]
  l <- is_case[keep]
  controls <- v[!l]
  cases <- v[l]
  keys <- c("auc", "youden", "youden_all", "sensitivity_at_specificity",
            "specificity_at_sensitivity", "partial_auc", "roc_curve")
  if (length(controls) == 0 || length(cases) == 0) {
    out <- rep(list(NULL), length(keys))
    names(out) <- keys
    return(out)
  }
  r <- build_roc(controls, cases)
  best <- coords(r, "best", best.method = "youden",
                 ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE)
  youden_all <- lapply(seq_len(nrow(best)), function(i)
    list(threshold = best$threshold[i], sensitivity = best$sensitivity[i],
         specificity = best$specificity[i],
         j = best$sensitivity[i] + best$specificity[i] - 1))
  i_min <- which.min(best$threshold)
  all <- coords(r, "all", ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE)
  list(
    auc = as.numeric(auc(r)),
    youden = youden_all[[i_min]],
    youden_all = youden_all,
    sensitivity_at_specificity = at_points(r, "specificity", "sensitivity",
                                           attained(r$specificities)),
    specificity_at_sensitivity = at_points(r, "sensitivity", "specificity",
                                           attained(r$sensitivities)),
    partial_auc = pauc_all(r),
    roc_curve = lapply(seq_len(nrow(all)), function(i)
      list(threshold = all$threshold[i], sensitivity = all$sensitivity[i],
           specificity = all$specificity[i]))
  )
}

expected_paired <- function(a, b, is_case) {
  keep <- !is.na(is_case) & is.finite(a) & is.finite(b)
  l <- is_case[keep]
  a <- a[keep]
  b <- b[keep]
  if (sum(l) == 0 || sum(!l) == 0) return(list(roc_test = NULL))
  ra <- build_roc(a[!l], a[l])
  rb <- build_roc(b[!l], b[l])
  t <- tryCatch(
    withCallingHandlers(roc.test(ra, rb, method = "delong", paired = TRUE, conf.level = 0.95),
                        warning = function(w) invokeRestart("muffleWarning")),
    error = function(e) e)
  if (inherits(t, "error")) {
    return(list(roc_test = NULL, roc_test_error = conditionMessage(t)))
  }
  list(roc_test = list(auc_a = unname(t$estimate[1]), auc_b = unname(t$estimate[2]),
                       z = unname(t$statistic), p = t$p.value,
                       diff_lower = t$conf.int[1], diff_upper = t$conf.int[2]))
}

make_case <- function(name, control, cases, extra_value = numeric(0), extra_case = logical(0)) {
  value <- c(control, cases, extra_value)
  is_case <- c(rep(FALSE, length(control)), rep(TRUE, length(cases)), extra_case)
  list(name = name, value = encode(value), is_case = encode_labels(is_case),
       expected = expected_single(value, is_case))
}

make_paired <- function(name, a, b, is_case) {
  list(name = name, value_a = encode(a), value_b = encode(b), is_case = encode_labels(is_case),
       expected = expected_paired(a, b, is_case))
}

# ---------------------------------------------------------------- cases
set.seed(20240611)
cases <- list()
add <- function(x) cases[[length(cases) + 1]] <<- x

add(make_case("small, no ties",
              c(1.2, 3.4, 2.2, 5.1, 4.4, 6.6, 0.7, 2.9, 3.8, 5.6),
              c(6.3, 7.7, 5.9, 8.1, 4.9, 9.0, 3.1, 6.1)))
add(make_case("small, random, no ties (3 significant digits)",
              signif(rnorm(12, 0, 1), 3), signif(rnorm(9, 0.8, 1), 3)))
add(make_case("heavy ties (2 significant digits)",
              signif(rnorm(60, 2.5, 0.8), 2), signif(rnorm(40, 3.0, 0.8), 2)))
add(make_case("heavy ties (integers 0..4)",
              round(runif(70, -0.5, 3.5)), round(runif(30, 0.5, 4.5))))
add(make_case("large n (2000 controls, 300 cases)", rnorm(2000), rnorm(300, 0.7)))
add(make_case("one case", signif(rnorm(20), 3), 0.5))
add(make_case("one control", 0.5, signif(rnorm(20), 3)))
add(make_case("one case, one control", 1, 2))
add(make_case("perfect separation, cases higher", c(1, 2, 3, 4), c(5, 6, 7)))
add(make_case("perfect separation, cases lower (AUC 0, no flip)", c(5, 6, 7), c(1, 2, 3, 4)))
add(make_case("every value tied", rep(3, 5), rep(3, 4)))
add(make_case("no cases", c(1, 2, 3), numeric(0)))
add(make_case("no controls", numeric(0), c(1, 2, 3)))
add(make_case("NULL, NaN and infinite rows skipped",
              c(1.5, 2.5, 3.5, 0.5, 2.0), c(3.0, 4.0, 2.25, 5.0),
              extra_value = c(NA, NaN, Inf, -Inf, 2.75, NA, NaN, 1.0, 4.5),
              extra_case = c(TRUE, FALSE, TRUE, FALSE, NA, FALSE, TRUE, NA, NA)))
add(make_case("only NULL rows", numeric(0), numeric(0),
              extra_value = c(NA, 1, NaN), extra_case = c(TRUE, NA, FALSE)))
add(make_case("negative values (and -0 tied with 0)",
              c(-5.25, -3.5, -0.0, -2.75, -1e-3, -7.0), c(0.0, -1.5, -0.5, -2.75, -1e-4)))
add(make_case("huge values: 1e9 + small offsets (adjacent doubles)",
              c(1e9, 1e9 + 1e-6, 1e9 + 3e-6, 1e9 + 2^-23 * 3, 1e9 - 2e-6),
              c(1e9 + 2^-23, 1e9 + 2e-6, 1e9 + 5e-6, 1e9 + 2^-23 * 4, 1e9 + 1e-6)))
add(make_case("extreme magnitudes (midpoints overflow)",
              c(-1.7e308, 1.5e308, -1e-300, 1.6e308), c(1.7e308, 1.55e308, 1e300, -1.6e308)))
add(make_case("tied best J (two thresholds)",
              c(1, 2, 5, 6), c(3, 4, 7, 8)))
add(make_case("tied best J in exact arithmetic, not in floating point",
              c(1, 2, 4, 5, 6, 8), c(3, 7)))
add(make_case("tied best J, three thresholds, floating point keeps two",
              c(1, 3, 4, 6, 7, 9), c(2, 5, 8)))
add(make_case("ties between cases and controls at the bounds",
              c(1, 2, 2, 3, 3, 3, 4, 5, 5, 6), c(2, 3, 3, 5, 6, 6, 7)))

# ---------------------------------------------------------------- paired cases
paired <- list()
addp <- function(x) paired[[length(paired) + 1]] <<- x

lab <- c(rep(FALSE, 8), rep(TRUE, 7))
a <- c(0.21, 0.55, 1.32, 0.97, -0.4, 0.08, 1.71, 0.63, 1.12, 2.05, 0.88, 1.49, 2.4, 0.36, 1.86)
b <- c(0.5, 0.12, 0.93, 1.41, 0.27, -0.2, 0.74, 1.05, 1.6, 0.81, 2.2, 1.18, 0.66, 1.95, 1.37)
addp(make_paired("small, no ties", a, b, lab))

n0 <- 60; n1 <- 40
lab <- c(rep(FALSE, n0), rep(TRUE, n1))
z <- rnorm(n0 + n1)
a <- signif(z + 0.9 * lab + rnorm(n0 + n1, 0, 0.7), 2)
b <- signif(0.6 * z + 0.5 * lab + rnorm(n0 + n1, 0, 0.9), 1)
addp(make_paired("heavy ties (1 and 2 significant digits), correlated", a, b, lab))

n0 <- 2000; n1 <- 300
lab <- c(rep(FALSE, n0), rep(TRUE, n1))
z <- rnorm(n0 + n1)
a <- z + 0.8 * lab
b <- 0.7 * z + 0.6 * lab + rnorm(n0 + n1, 0, 0.7)
addp(make_paired("large n (2000 controls, 300 cases)", a, b, lab))

lab <- c(FALSE, TRUE, FALSE, TRUE, TRUE, FALSE, FALSE, TRUE, FALSE, TRUE)
a <- c(1.1, 2.3, 0.4, 1.9, 1.1, 2.8, 0.9, 3.3, 1.5, 0.7)
addp(make_paired("identical markers (d = 0, variance 0)", a, a, lab))

addp(make_paired("small n (3 controls, 2 cases)",
                 c(1, 2, 3, 2.5, 4), c(2, 1, 4, 3, 3.5), c(FALSE, FALSE, FALSE, TRUE, TRUE)))

lab <- c(FALSE, FALSE, TRUE, TRUE, FALSE, TRUE, NA, FALSE, TRUE, TRUE, FALSE, FALSE, TRUE)
a <- c(0.3, 1.2, 2.2, NA, 0.8, 1.7, 0.5, 1.0, 2.9, 0.6, NaN, 1.4, 2.0)
b <- c(1.1, 0.2, 1.8, 2.5, Inf, 0.9, 1.3, 0.4, NA, 1.6, 0.7, 1.2, -Inf)
addp(make_paired("NULL in one marker, NaN/Inf, NULL label (rows dropped from both)", a, b, lab))

addp(make_paired("both perfect (AUC 1 and 1)", c(1, 2, 3, 4, 5), c(3, 1, 2, 6, 5),
                 c(FALSE, FALSE, FALSE, TRUE, TRUE)))
addp(make_paired("perfect vs perfectly inverted (d = 1, variance 0)",
                 c(1, 2, 3, 4, 5), c(5, 4, 3, 2, 1), c(FALSE, FALSE, FALSE, TRUE, TRUE)))
addp(make_paired("one case, different AUCs (variance 0/0)",
                 c(1, 2, 3, 2.5), c(3, 1, 2, 0), c(FALSE, FALSE, FALSE, TRUE)))
addp(make_paired("one case, equal AUCs (pROC errors)",
                 c(1, 2, 3, 2.5), c(3, 1, 2, 2.5), c(FALSE, FALSE, FALSE, TRUE)))
addp(make_paired("one marker constant (AUC 0.5, zero variance)",
                 c(0.2, 1.4, 0.9, 2.2, 1.2, 1.1, 2.6), rep(7, 7),
                 c(FALSE, FALSE, FALSE, TRUE, TRUE, FALSE, TRUE)))
addp(make_paired("no controls", c(1, 2, 3), c(3, 2, 1), c(TRUE, TRUE, TRUE)))

# ---------------------------------------------------------------- write
out <- list(
  generated_by = "testdata/reference/roc.R",
  versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                  pROC = as.character(packageVersion("pROC"))),
  cases = cases,
  paired_cases = paired
)
path <- file.path(script_dir, "roc.json")
writeLines(to_json(out), path)
cat(sprintf("wrote %s: %d cases, %d paired cases\n", path, length(cases), length(paired)))
