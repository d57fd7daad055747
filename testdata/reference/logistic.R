#!/usr/bin/env Rscript
# Reference values for the regression aggregates (logistic_regression, odds_ratio_per_sd,
# conditional_logistic).
#
# Writes logistic.json beside this file. Each case holds the inputs (is_case as true / false /
# null; x as a list of columns, each a list of decimal strings that round-trip exactly, or
# null / "NaN" / "Infinity" for rows to skip; matched_set as integers or null for the
# conditional cases) and `expected`:
#
# - kind "logistic": glm(y ~ x1 + x2 + ..., family = binomial) with R's default control
#   (glm.control(): epsilon = 1e-8, maxit = 25) on the complete rows (rows where is_case or any
#   x is NULL / NaN / infinite are dropped); summary.glm's Wald table as R prints it: coef, se,
#   z, p (lists, intercept first), odds_ratio = exp(coef), converged, iterations (glm's
#   `iter`), deviance, log_likelihood (logLik), null_log_likelihood (−null.deviance / 2) and
#   aic (AIC). Aliased (collinear / constant) columns are null in every list (glm's
#   QR tolerance at the default control, min(1e-7, epsilon / 1000) = 1e-11).
#   Discern runs glm.fit's iterations with its rule, so its estimates are R's, not the
#   maximum itself: the diagnostics print how far R's estimate is from the fit run to
#   epsilon = 1e-14 (up to ~3e-9 relatively, for `area_error` of the breast-cancer data).
# - kind "per_sd": x[[1]] is the value, x[[2]], ... covariates. On the complete rows, the
#   value is standardised by its mean and SD (n - 1); glm(y ~ z + covariates) as above; for
#   z's coefficient b (se s): odds_ratio = exp(b), lower / upper = exp(b -/+ qnorm(0.975) s),
#   p = 2 pnorm(-|b / s|) (also coef = b, se = s). null when undefined (zero variance, no
#   cases or no controls).
# - kind "conditional": survival::clogit(y ~ x1 + ... + strata(matched_set),
#   method = "exact", control = coxph.control(eps = 1e-12, toler.chol = 1e-15,
#   iter.max = 100)) on the complete rows (is_case, matched_set and every x non-missing and
#   finite): coef, se, z, p, odds_ratio (no intercept), converged, iterations (fit$iter),
#   log_likelihood / null_log_likelihood (fit$loglik), lr_test / score_test / wald_test
#   ({statistic, df, p}: 2 (loglik - loglik0), fit$score, fit$wald.test, as summary prints),
#   loglik (at the estimate); aliased columns null. Some cases also carry `breslow` (the same
#   fit with method = "breslow") and every case `default_control` (coef, se, iterations with
#   coxph.control() defaults) for comparison.
#
# Every fit with an estimate also has or_profile_lower / or_profile_upper (lists; for per_sd
# the value's two numbers): 95 % profile-likelihood intervals of the odds ratios, the exact
# roots of 2 (l_hat - l_p(b)) = qchisq(0.95, 1), l_p(b) the log-likelihood maximised over the
# other coefficients with this one fixed at b (glm.fit / clogit refits with an offset at
# epsilon = 1e-14, the log-likelihood evaluated without glm's link clamps, uniroot run to the
# last digits). MASS's confint() on the glm interpolates the same profile with a spline; the
# diagnostics print how far it is from the exact roots (about 1e-4).
#
# Numbers are written with the shortest decimal that round-trips (%.15g, %.16g or %.17g), not
# with jsonlite's digits = NA, which stops at 15 significant digits.
#
# Every case also records `r_warnings` (the warnings R gave for the reference fit).
# `separated: true` marks data where the maximum likelihood estimate does not exist
# (complete or quasi-complete separation): R's numbers there are an artefact of its stopping
# rule, recorded as R gives them. For one predictor the flag is checked against the ranges
# (separated iff the groups' ranges do not overlap); the two-predictor cases are separated by
# construction. The cases at the end come from the breast-cancer data (wdbc.csv, written by
# wdbc.py) and from generated data of the same character: fits that R completes where the
# fitted probabilities reach 0 or 1 numerically (|eta| > 30) or where the deviance rule is
# met only at R's epsilon.
#
# Run:  Rscript testdata/reference/logistic.R   (R >= 4.2, jsonlite, survival; versions are
# recorded in the JSON)

suppressPackageStartupMessages({
  library(jsonlite)
  library(survival)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script)) dirname(normalizePath(script)) else getwd()

GLM_CONTROL <- glm.control()
GLM_TIGHT <- glm.control(epsilon = 1e-14, maxit = 100)
COX_CONTROL <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 100)

# ---- encoding -------------------------------------------------------------------------------

shortest <- function(x) {
  for (d in 15:17) {
    s <- sprintf(paste0("%.", d, "g"), x)
    if (as.numeric(s) == x) return(s)
  }
  stop("no round-trip representation")
}

# An input value: null for NA (NULL), "NaN", "Infinity" / "-Infinity", or a decimal string.
enc_in <- function(x) {
  lapply(x, function(v) {
    if (is.nan(v)) "NaN"
    else if (is.na(v)) NULL
    else if (is.infinite(v)) if (v > 0) "Infinity" else "-Infinity"
    else shortest(v)
  })
}
dec_in <- function(s) vapply(s, function(v) if (is.null(v)) NA_real_ else as.numeric(v), 0)

# An output number, written verbatim with the shortest round-trip digits.
num <- function(v) {
  if (is.null(v) || length(v) == 0 || is.na(v)) return(NULL)
  if (is.infinite(v)) return(if (v > 0) "Infinity" else "-Infinity")
  structure(shortest(v), class = "json")
}
vec <- function(x) lapply(unname(x), num)

# ---- fits -----------------------------------------------------------------------------------

with_warnings <- function(expr) {
  w <- character()
  value <- withCallingHandlers(expr, warning = function(c) {
    w <<- c(w, conditionMessage(c))
    invokeRestart("muffleWarning")
  })
  list(value = value, warnings = unique(w))
}

complete_rows <- function(y, xs, set = NULL) {
  ok <- !is.na(y)
  for (x in xs) ok <- ok & is.finite(x)
  if (!is.null(set)) ok <- ok & !is.na(set)
  ok
}

# glm on complete data: y (0/1), columns xs (named list). Returns the Wald table with NA for
# aliased columns, in column order with the intercept first.
glm_fit <- function(y, xs) {
  d <- data.frame(y = y, xs)
  names(d) <- c("y", paste0("x", seq_along(xs)))
  form <- reformulate(names(d)[-1], "y")
  r <- with_warnings(glm(form, family = binomial, data = d, control = GLM_CONTROL))
  f <- r$value
  tab <- summary(f)$coefficients
  full <- c("(Intercept)", names(d)[-1])
  out <- matrix(NA_real_, length(full), 4, dimnames = list(full, colnames(tab)))
  out[rownames(tab), ] <- tab
  # How far R's estimate is from the maximum (glm run on to epsilon = 1e-14).
  # (On the non-aliased columns: at 1e-14 glm's QR tolerance no longer detects aliasing.)
  kept <- names(coef(f))[!is.na(coef(f))]
  columns <- setdiff(kept, "(Intercept)")
  tight_form <- if (length(columns)) reformulate(columns, "y") else y ~ 1
  tight <- suppressWarnings(glm(tight_form, family = binomial, data = d, control = GLM_TIGHT))
  tight_diff <- max(abs(coef(f)[kept] / coef(tight)[kept] - 1))
  X <- model.matrix(reformulate(names(d)[-1]), d)
  kept_index <- match(kept, full)
  list(table = out, converged = f$converged, iter = f$iter, deviance = f$deviance,
       loglik = as.numeric(logLik(f)), null_loglik = -f$null.deviance / 2, aic = AIC(f),
       warnings = r$warnings, tight_diff = tight_diff, tight_converged = tight$converged,
       fit = f, y = y, X = X, kept = kept_index)
}

# The exact profile intervals of a glm_fit result, with MASS's confint() in the diagnostics.
glm_fit_profile <- function(name, g) {
  p <- glm_profile(g$y, g$X, g$kept)
  m <- tryCatch(suppressMessages(suppressWarnings(confint(g$fit))), error = function(e) NULL)
  if (is.null(m)) {
    note_diag(name, "profile interval: MASS confint() fails (its spline has too few points)", 1)
  } else {
    m <- exp(matrix(m, ncol = 2))
    note_diag(name, "profile interval: MASS confint() vs exact roots, max |rel diff|",
              max(abs(m / cbind(p$lower, p$upper) - 1), na.rm = TRUE))
  }
  p
}

diagnostics <- list()
note_diag <- function(name, what, value) {
  diagnostics[[length(diagnostics) + 1]] <<- data.frame(case = name, what = what, value = value)
}

logistic_expected <- function(name, y, xs, separated) {
  ok <- complete_rows(y, xs)
  yy <- as.numeric(y[ok])
  if (length(yy) == 0 || all(yy == 1) || all(yy == 0))
    return(list(expected = NULL, warnings = character()))
  g <- glm_fit(yy, lapply(xs, function(x) x[ok]))
  if (!separated)
    note_diag(name, "coef: R's default vs epsilon = 1e-14, max |rel diff|", g$tight_diff)
  t <- g$table
  profile <- if (separated) list(lower = rep(NA_real_, nrow(t)), upper = rep(NA_real_, nrow(t)))
             else glm_fit_profile(name, g)
  list(expected = list(coef = vec(t[, 1]), se = vec(t[, 2]), z = vec(t[, 3]), p = vec(t[, 4]),
                       odds_ratio = vec(exp(t[, 1])), converged = g$converged,
                       iterations = g$iter, deviance = num(g$deviance),
                       log_likelihood = num(g$loglik), null_log_likelihood = num(g$null_loglik),
                       aic = num(g$aic), or_profile_lower = vec(profile$lower),
                       or_profile_upper = vec(profile$upper)),
       warnings = g$warnings)
}

per_sd_expected <- function(name, y, xs, separated) {
  ok <- complete_rows(y, xs)
  yy <- as.numeric(y[ok])
  v <- xs[[1]][ok]
  if (length(yy) < 2 || all(yy == 1) || all(yy == 0) || sd(v) == 0)
    return(list(expected = NULL, warnings = character()))
  z <- (v - mean(v)) / sd(v)
  g <- glm_fit(yy, c(list(z), lapply(xs[-1], function(x) x[ok])))
  if (!separated)
    note_diag(name, "coef: R's default vs epsilon = 1e-14, max |rel diff|", g$tight_diff)
  b <- g$table[2, 1]
  s <- g$table[2, 2]
  if (is.na(b)) return(list(expected = NULL, warnings = g$warnings))
  q <- qnorm(0.975)
  profile <- glm_fit_profile(name, g)
  list(expected = list(odds_ratio = num(exp(b)), lower = num(exp(b - q * s)),
                       upper = num(exp(b + q * s)), p = num(g$table[2, 4]),
                       coef = num(b), se = num(s), converged = g$converged,
                       iterations = g$iter, log_likelihood = num(g$loglik),
                       null_log_likelihood = num(g$null_loglik), deviance = num(g$deviance),
                       aic = num(g$aic), or_profile_lower = num(profile$lower[2]),
                       or_profile_upper = num(profile$upper[2])),
       warnings = g$warnings)
}

clogit_fit <- function(d, method, control) {
  xn <- names(d)[-(1:2)]
  form <- as.formula(paste("y ~", paste(xn, collapse = " + "), "+ strata(set)"))
  r <- with_warnings(clogit(form, data = d, method = method, control = control))
  f <- r$value
  b <- coef(f)
  v <- diag(f$var)
  se <- rep(NA_real_, length(b))
  usable <- !is.na(b) & v >= 0    # v < 0 only in a diverged (separated) fit
  se[usable] <- sqrt(v[usable])
  z <- b / se
  list(coef = b, se = se, z = z, p = 2 * pnorm(-abs(z)), iter = f$iter,
       loglik = f$loglik[2], null_loglik = f$loglik[1],
       score_test = unname(f$score), wald_test = unname(f$wald.test),
       df = sum(!is.na(b)), converged = !any(grepl("Ran out of iterations", r$warnings)),
       warnings = r$warnings)
}

# ---- profile-likelihood intervals ----------------------------------------------------------

# The binomial log-likelihood at eta, without glm's clamps at |eta| > 30.
exact_loglik <- function(y, eta) sum(ifelse(y == 1, eta, 0) - (pmax(eta, 0) + log1p(exp(-abs(eta)))))

# The exact roots of 2 (l_hat - l_p(b)) = qchisq(level, 1) on each side of every estimate, as
# odds ratios; ll(j, b) is the profile log-likelihood with coefficient j fixed at b.
profile_roots <- function(ll, bhat, se, l_hat, level = 0.95) {
  target <- qchisq(level, 1)
  g <- function(j, b) 2 * (l_hat - ll(j, b)) - target
  bounds <- lapply(seq_along(bhat), function(j) {
    sapply(c(-1, 1), function(side) {
      w <- qnorm(0.5 + level / 2) * se[j]
      inner <- bhat[j]
      outer <- bhat[j] + side * w
      k <- 0
      while (g(j, outer) < 0) {
        k <- k + 1
        if (k > 40) return(NA_real_)
        inner <- outer
        outer <- bhat[j] + side * w * 2^k
      }
      uniroot(function(b) g(j, b), sort(c(inner, outer)),
              tol = 1e-15 * max(1, abs(outer)), maxiter = 5000)$root
    })
  })
  list(lower = exp(sapply(bounds, `[`, 1)), upper = exp(sapply(bounds, `[`, 2)))
}

# Profile intervals of a glm on the design X (intercept first), for the columns `kept`.
glm_profile <- function(y, X, kept) {
  Xk <- X[, kept, drop = FALSE]
  top <- glm.fit(Xk, y, family = binomial(), control = GLM_TIGHT)
  bhat <- top$coefficients
  se <- sqrt(diag(chol2inv(qr.R(top$qr))))
  l_hat <- exact_loglik(y, drop(Xk %*% bhat))
  ll <- function(j, b) {
    off <- b * Xk[, j]
    rest <- Xk[, -j, drop = FALSE]
    if (ncol(rest) == 0) return(exact_loglik(y, off))
    f <- suppressWarnings(glm.fit(rest, y, offset = off, family = binomial(), control = GLM_TIGHT))
    exact_loglik(y, off + drop(rest %*% f$coefficients))
  }
  r <- profile_roots(ll, bhat, se, l_hat)
  lower <- upper <- rep(NA_real_, ncol(X))
  lower[kept] <- r$lower
  upper[kept] <- r$upper
  list(lower = lower, upper = upper)
}

# A global test as summary(clogit) prints it: statistic, df, chi-squared upper tail.
test <- function(statistic, df) {
  if (is.null(statistic) || is.na(statistic)) return(NULL)
  list(statistic = num(statistic), df = df,
       p = num(pchisq(statistic, df, lower.tail = FALSE)))
}

conditional_expected <- function(name, y, set, xs, breslow = FALSE) {
  ok <- complete_rows(y, xs, set)
  d <- data.frame(y = as.numeric(y[ok]), set = set[ok], lapply(xs, function(x) x[ok]))
  names(d) <- c("y", "set", paste0("x", seq_along(xs)))
  informative <- tapply(d$y, d$set, function(s) any(s == 1) && any(s == 0))
  if (!any(informative)) return(list(expected = NULL, warnings = character()))
  f <- clogit_fit(d, "exact", COX_CONTROL)
  f0 <- clogit_fit(d, "exact", coxph.control())
  if (f$converged) {
    note_diag(name, "coef: default coxph.control vs tight, max |rel diff|",
              max(abs(f0$coef / f$coef - 1), na.rm = TRUE))
    note_diag(name, "se: default coxph.control vs tight, max |rel diff|",
              max(abs(f0$se / f$se - 1), na.rm = TRUE))
  }
  # Sets without both a case and a control contribute nothing: the fit without them agrees.
  if (!all(informative)) {
    g <- clogit_fit(d[d$set %in% names(informative)[informative], ], "exact", COX_CONTROL)
    note_diag(name, "coef: fit without the uninformative sets, max |rel diff|",
              max(abs(g$coef / f$coef - 1), na.rm = TRUE))
  }
  profile <- list(lower = rep(NA_real_, length(f$coef)), upper = rep(NA_real_, length(f$coef)))
  if (f$converged) {
    kept <- which(!is.na(f$coef))
    xn <- names(d)[-(1:2)]
    ll <- function(j, b) {
      d$off <- b * d[[xn[kept[j]]]]
      terms <- c("offset(off)", xn[kept[-j]])
      form <- as.formula(paste("y ~", paste(terms, collapse = " + "), "+ strata(set)"))
      fit <- suppressWarnings(clogit(form, data = d, method = "exact", control = COX_CONTROL))
      tail(fit$loglik, 1)
    }
    r <- profile_roots(ll, f$coef[kept], f$se[kept], f$loglik)
    profile$lower[kept] <- r$lower
    profile$upper[kept] <- r$upper
  }
  e <- list(coef = vec(f$coef), se = vec(f$se), z = vec(f$z), p = vec(f$p),
            or_profile_lower = vec(profile$lower), or_profile_upper = vec(profile$upper),
            odds_ratio = vec(exp(f$coef)), converged = f$converged, iterations = f$iter,
            loglik = num(f$loglik), log_likelihood = num(f$loglik),
            null_log_likelihood = num(f$null_loglik),
            lr_test = test(2 * (f$loglik - f$null_loglik), f$df),
            score_test = test(f$score_test, f$df), wald_test = test(f$wald_test, f$df))
  out <- list(expected = e, warnings = f$warnings,
              default_control = list(coef = vec(f0$coef), se = vec(f0$se),
                                     iterations = f0$iter,
                                     r_warnings = as.list(f0$warnings)))
  if (breslow) {
    b <- clogit_fit(d, "breslow", COX_CONTROL)
    out$breslow <- list(coef = vec(b$coef), se = vec(b$se), z = vec(b$z), p = vec(b$p),
                        odds_ratio = vec(exp(b$coef)), iterations = b$iter)
  }
  out
}

# ---- case assembly --------------------------------------------------------------------------

cases <- list()

add_case <- function(kind, name, is_case, xs, set = NULL, separated = FALSE, breslow = FALSE) {
  # Inputs go through their decimal strings, so that R computes on exactly the stored doubles.
  xs_enc <- lapply(xs, enc_in)
  xs_dec <- lapply(xs_enc, dec_in)
  for (i in seq_along(xs)) stopifnot(identical(is.na(xs_dec[[i]]), is.na(xs[[i]])),
                                     all(xs_dec[[i]] == xs[[i]], na.rm = TRUE))
  r <- switch(kind,
              logistic = logistic_expected(name, is_case, xs_dec, separated),
              per_sd = per_sd_expected(name, is_case, xs_dec, separated),
              conditional = conditional_expected(name, is_case, set, xs_dec, breslow))
  if (kind != "conditional" && length(xs) == 1) {
    ok <- complete_rows(is_case, xs_dec)
    x <- xs_dec[[1]][ok]; y <- is_case[ok]
    if (any(y) && any(!y) && length(unique(x)) > 1) {
      apart <- max(x[!y]) <= min(x[y]) || max(x[y]) <= min(x[!y])
      if (apart != separated) stop(name, ": separated should be ", apart)
    }
  }
  case <- list(name = name, kind = kind, is_case = as.list(is_case), x = xs_enc)
  if (kind == "conditional") case$matched_set <- lapply(as.integer(set), function(s) if (is.na(s)) NULL else s)
  case["expected"] <- list(r$expected)
  if (separated) case$separated <- TRUE
  case$r_warnings <- as.list(r$warnings)
  if (!is.null(r$breslow)) case$breslow <- r$breslow
  if (!is.null(r$default_control)) case$default_control <- r$default_control
  cases[[length(cases) + 1]] <<- case
  invisible(NULL)
}

s7 <- function(x) signif(x, 7)
bern <- function(eta) runif(length(eta)) < plogis(eta)

set.seed(20240611)

# -- logistic_regression --
x <- s7(rnorm(100))
add_case("logistic", "one predictor, n = 100", bern(-0.3 + 0.9 * x), list(x))

x1 <- s7(rnorm(300, 1, 2)); x2 <- s7(rlnorm(300, 0, 0.5)); x3 <- as.numeric(runif(300) < 0.4)
add_case("logistic", "three predictors (normal, log-normal, binary), n = 300",
         bern(-1 + 0.4 * x1 + 0.7 * x2 - 0.8 * x3), list(x1, x2, x3))

x <- s7(rnorm(20, 5, 2))
y <- bern(-5 + 1 * x)
add_case("logistic", "small, n = 20", y, list(x))

x1 <- s7(rnorm(5000)); x2 <- s7(rgamma(5000, 2, 1))
add_case("logistic", "large, n = 5000, two predictors",
         bern(0.2 + 0.5 * x1 - 0.3 * x2), list(x1, x2))

x <- s7(rnorm(3000))
y <- bern(-4.3 + 0.8 * x)
add_case("logistic", sprintf("rare outcome (%d cases of 3000)", sum(y)), y, list(x))

x <- s7(rnorm(300, 1000, 1))
add_case("logistic", "predictor with mean 1000 and SD 1 (ill-conditioned design)",
         bern(0.5 * (x - 1000)), list(x))

add_case("logistic", "complete separation",
         c(rep(FALSE, 5), rep(TRUE, 5)), list(c(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)), separated = TRUE)

add_case("logistic", "quasi-complete separation (one tie at the boundary)",
         c(rep(FALSE, 5), rep(TRUE, 5)), list(c(1, 2, 3, 4, 5, 5, 6, 7, 8, 9)),
         separated = TRUE)

x1 <- s7(rnorm(200)); x2 <- s7(rnorm(200))
add_case("logistic", "collinear: x3 = x1 + x2 (x3 aliased, null)",
         bern(0.3 + 0.8 * x1 - 0.5 * x2), list(x1, x2, x1 + x2))

x1 <- s7(rnorm(150))
add_case("logistic", "duplicated column (x2 = x1, aliased)",
         bern(0.1 + 0.6 * x1), list(x1, x1))

x1 <- s7(rnorm(150))
add_case("logistic", "constant predictor (aliased with the intercept)",
         bern(-0.2 + 0.7 * x1), list(rep(3.7, 150), x1))

add_case("logistic", "all rows are cases (null)", rep(TRUE, 8),
         list(c(0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5)))

add_case("logistic", "no cases (null)", rep(FALSE, 6), list(c(1, 2, 3, 4, 5, 6)))

x1 <- s7(rnorm(60)); x2 <- s7(rnorm(60))
y <- bern(0.4 * x1 + 0.4 * x2)
y[c(3, 17)] <- NA
x1[c(5, 40)] <- c(NA, NaN)
x2[c(8, 41, 50)] <- c(Inf, -Inf, NA)
add_case("logistic", "NULL, NaN and infinite rows are skipped", y, list(x1, x2))

# -- odds_ratio_per_sd --
v <- s7(rlnorm(200, 2, 0.6))
y <- bern(-2 + 0.15 * v)
add_case("per_sd", "no covariates, n = 200", y, list(v))

age <- round(runif(400, 30, 80)); v <- s7(rnorm(400, 10 + 0.05 * age, 2))
add_case("per_sd", "one covariate (age)", bern(-4 + 0.05 * age + 0.2 * v), list(v, age))

sex <- as.numeric(runif(400) < 0.5)
add_case("per_sd", "two covariates (age, sex)",
         bern(-4 + 0.05 * age + 0.2 * v + 0.3 * sex), list(v, age, sex))

v <- s7(rnorm(80, 1e6, 3))
add_case("per_sd", "value with mean 1e6 and SD 3", bern(0.3 * (v - 1e6)), list(v))

v <- s7(rnorm(50)); cv <- s7(rnorm(50))
y <- bern(0.5 * v)
y[2] <- NA; v[c(4, 9)] <- c(NA, Inf); cv[c(12, 30)] <- c(NA, NaN)
add_case("per_sd", "NULL / NaN / infinite rows (value, label, covariate) are skipped before standardising",
         y, list(v, cv))

add_case("per_sd", "zero-variance value (null)", c(TRUE, FALSE, TRUE, FALSE, FALSE, TRUE),
         list(rep(2.5, 6)))

add_case("per_sd", "all rows are cases (null)", rep(TRUE, 5), list(c(1, 2, 3, 4, 5)))

# -- conditional_logistic --
# Matched sets: `sizes` controls per set, `cases` cases per set.
matched <- function(n_cases, n_controls) {
  set <- rep(seq_along(n_cases), n_cases + n_controls)
  y <- unlist(mapply(function(a, b) c(rep(TRUE, a), rep(FALSE, b)), n_cases, n_controls,
                     SIMPLIFY = FALSE))
  list(set = set, y = y)
}

m <- matched(rep(1, 60), rep(1, 60))
x <- as.numeric(runif(120) < ifelse(m$y, 0.55, 0.35))
add_case("conditional", "1:1 pairs, binary exposure (coef = log(n10 / n01))", m$y, list(x),
         m$set)

m <- matched(rep(1, 50), rep(1, 50))
x <- s7(rnorm(100) + 0.5 * m$y)
add_case("conditional", "1:1 pairs, continuous", m$y, list(x), m$set)

m <- matched(rep(1, 40), rep(2, 40))
x <- s7(rnorm(120) + 0.6 * m$y)
add_case("conditional", "1:2 matching", m$y, list(x), m$set)

m <- matched(rep(1, 30), rep(4, 30))
x <- s7(rnorm(150, 2, 1.5) + 0.7 * m$y)
add_case("conditional", "1:4 matching", m$y, list(x), m$set, breslow = TRUE)

nc <- sample(1:5, 40, replace = TRUE)
m <- matched(rep(1, 40), nc)
x <- s7(rnorm(length(m$y)) + 0.5 * m$y)
perm <- sample(length(m$y))
add_case("conditional", "variable set sizes (1:1 to 1:5), rows shuffled, set ids not contiguous",
         m$y[perm], list(x[perm]), (m$set * 7 + 3)[perm])

ncase <- c(rep(2, 15), rep(3, 5), rep(1, 10)); nctl <- c(rep(3, 10), rep(4, 5), rep(5, 5), rep(2, 10))
m <- matched(ncase, nctl)
x <- s7(rnorm(length(m$y)) + 0.6 * m$y)
add_case("conditional", "sets with 2 and 3 cases (exact differs from breslow)", m$y, list(x),
         m$set, breslow = TRUE)

m <- matched(c(rep(1, 25), rep(0, 3), rep(2, 2)), c(rep(2, 25), rep(3, 3), rep(0, 2)))
x <- s7(rnorm(length(m$y)) + 0.5 * m$y)
add_case("conditional", "sets with no case or no control contribute nothing", m$y, list(x), m$set)

m <- matched(rep(1, 80), rep(3, 80))
x1 <- s7(rnorm(320) + 0.4 * m$y); x2 <- as.numeric(runif(320) < ifelse(m$y, 0.5, 0.3))
add_case("conditional", "two predictors (continuous, binary), 1:3", m$y, list(x1, x2), m$set,
         breslow = TRUE)

m <- matched(rep(1, 30), rep(2, 30))
x1 <- s7(rnorm(90) + 0.5 * m$y); x2 <- s7(rnorm(90))
y <- m$y; set <- m$set
y[4] <- NA; set[10] <- NA; x1[c(20, 33)] <- c(NA, NaN); x2[c(50, 61)] <- c(Inf, NA)
add_case("conditional", "NULL / NaN / infinite rows are skipped (sets shrink)", y, list(x1, x2),
         set)

m <- matched(rep(1, 300), rep(3, 300))
x1 <- s7(rnorm(1200) + 0.5 * m$y); x2 <- as.numeric(runif(1200) < ifelse(m$y, 0.45, 0.3))
add_case("conditional", "300 sets of 1:3, two predictors", m$y, list(x1, x2), m$set,
         breslow = TRUE)

m <- matched(rep(1, 40), rep(2, 40))
x1 <- s7(rnorm(120) + 0.5 * m$y)
within <- rep(sample(0:1, 40, replace = TRUE), each = 3)
add_case("conditional", "predictor constant within every set (the matching variable: null)",
         m$y, list(x1, within), m$set)

m <- matched(rep(1, 10), rep(2, 10))
x <- ifelse(m$y, 1, 0) + s7(runif(30, 0, 0.5))
add_case("conditional", "separation: every case above its controls", m$y, list(x), m$set,
         separated = TRUE)

m <- matched(c(1, 1, 0), c(0, 0, 3))
add_case("conditional", "no set with both a case and a control (null)", m$y,
         list(c(1, 2, 3, 4, 5)), m$set)

# -- fits that R completes where Discern once gave up (appended, with their own seed, so that
# the cases above keep their data) --
set.seed(20261202)
wdbc <- read.csv(file.path(here, "wdbc.csv"), comment.char = "#")
y <- wdbc$malignant == 1
add_case("logistic", "breast cancer: mean_concavity (slow convergence: R's epsilon, never 1e-14)",
         y, list(wdbc$mean_concavity))
add_case("logistic", "breast cancer: area_error (overlap, fitted probabilities 0 or 1, |eta| to 66)",
         y, list(wdbc$area_error))
add_case("logistic", "breast cancer: worst_area (overlap, |eta| to 40)", y, list(wdbc$worst_area))
for (v in c("mean_concavity", "area_error", "worst_area"))
  add_case("per_sd", paste("breast cancer:", v, "per SD"), y, list(wdbc[[v]]))
add_case("logistic", "breast cancer: all three", y,
         list(wdbc$mean_concavity, wdbc$area_error, wdbc$worst_area))

x <- s7(rlnorm(600, 3.4, 0.8))
y <- bern(-5 + 0.13 * x)
add_case("logistic", "long right tail, strong effect: overlap with |eta| > 30", y, list(x))
add_case("per_sd", "long right tail, strong effect, per SD", y, list(x))

x <- s7(rgamma(600, 1.6, scale = 0.055))
add_case("logistic", "skewed predictor with a steep slope (as mean_concavity)",
         bern(-3.8 + 36.8 * x), list(x))

x1 <- s7(rnorm(80)); x2 <- s7(rnorm(80))
add_case("logistic", "complete separation by x1 + x2 (each predictor alone overlaps)",
         x1 + x2 > 0.3, list(x1, x2), separated = TRUE)
x1 <- c(s7(rnorm(40)), 0, 0, 1, -1); x2 <- c(s7(rnorm(40)), 0, 0, 1, -1)
add_case("logistic", "quasi-complete separation by x1 - x2 (ties on the boundary)",
         c(x1[1:40] - x2[1:40] > 0, TRUE, FALSE, TRUE, FALSE), list(x1, x2), separated = TRUE)
x <- c(s7(runif(30, 0, 1)), s7(runif(30, 1, 2)))
add_case("per_sd", "complete separation, per SD (null)", c(rep(FALSE, 30), rep(TRUE, 30)),
         list(x), separated = TRUE)

# ---- write ----------------------------------------------------------------------------------

out <- list(
  generated_by = "testdata/reference/logistic.R",
  versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                  survival = as.character(packageVersion("survival")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  cases = cases)
path <- file.path(here, "logistic.json")
writeLines(toJSON(out, auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null",
                  pretty = 1, digits = NA), path)
diag <- do.call(rbind, diagnostics)
if (nzchar(Sys.getenv("DIAG"))) print(diag)
for (w in unique(diag$what)) {
  k <- diag$what == w
  cat(sprintf("%-58s max %.2e over %d cases\n", w, max(diag$value[k], na.rm = TRUE), sum(k)))
}
cat(sprintf("wrote %d cases to %s\n", length(cases), path))
