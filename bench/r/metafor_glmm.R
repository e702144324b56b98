# Classical binomial-normal GLMM with metafor (the anchor for bayes_va.glmm.fit_glmm).
#
#   Rscript bench/r/metafor_glmm.R MANIFEST.json OUT.json [REPEATS]
#
# For each dataset: metafor::rma.glmm(measure = "PLO", xi = events, ni = n, method = "ML")
# with its defaults (nAGQ = 7, Wald z interval), timed over REPEATS calls (default 20) after
# one untimed warm-up call; plus two cross-checks that are not timed against bayes_va:
# rma.glmm with nAGQ = 25 and lme4::glmer(nAGQ = 25) directly.
t_start <- proc.time()[["elapsed"]]
args <- commandArgs(TRUE)
if (length(args) < 2) stop("usage: metafor_glmm.R MANIFEST.json OUT.json [REPEATS]")
reps <- if (length(args) >= 3) as.integer(args[3]) else 20L
source(file.path(dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
  value = TRUE)[1]))), "common.R"))
t0 <- elapsed()
suppressPackageStartupMessages({library(metafor); library(lme4)})
t_lib <- elapsed() - t0

summarise_rma <- function(fit) {
  list(mu = unname(fit$b[1, 1]), se_mu = unname(fit$se), mu_ci = c(fit$ci.lb, fit$ci.ub),
       tau2 = fit$tau2, tau = sqrt(fit$tau2),
       pooled = plogis(unname(fit$b[1, 1])), pooled_ci = plogis(c(fit$ci.lb, fit$ci.ub)),
       loglik = as.numeric(logLik(fit)))
}

results <- list()
for (ds in read_manifest(args[1])) {
  d <- ds$data
  call_rma <- function(nAGQ = 7) rma.glmm(measure = "PLO", xi = events, ni = n, data = d,
                                          method = "ML", nAGQ = nAGQ)
  first_t0 <- elapsed()
  first <- with_warnings(call_rma())
  first_s <- elapsed() - first_t0
  times <- numeric(reps)
  for (r in seq_len(reps)) {
    t0 <- elapsed()
    suppressWarnings(call_rma())
    times[r] <- elapsed() - t0
  }
  agq25 <- with_warnings(call_rma(25))
  g <- with_warnings(glmer(cbind(events, n - events) ~ 1 + (1 | study), data = d,
                           family = binomial, nAGQ = 25))
  gm <- g$value
  lme4_mu <- unname(fixef(gm)[1])
  lme4_se <- sqrt(vcov(gm)[1, 1])
  lme4_tau <- unname(attr(VarCorr(gm)$study, "stddev"))
  results[[ds$id]] <- c(
    summarise_rma(first$value),
    list(
      warnings = first$warnings,
      nAGQ = 7L,
      time_first_s = first_s,
      time_median_s = median(times),
      time_min_s = min(times),
      time_repeats = reps,
      agq25 = c(summarise_rma(agq25$value), list(warnings = agq25$warnings)),
      lme4_agq25 = list(mu = lme4_mu, se_mu = lme4_se, tau = lme4_tau, tau2 = lme4_tau^2,
                        mu_ci = lme4_mu + c(-1, 1) * qnorm(0.975) * lme4_se,
                        loglik = as.numeric(logLik(gm)), warnings = g$warnings)
    )
  )
  cat(sprintf("metafor %-22s mu %.6f  tau %.6f  %.1f ms\n", ds$id, results[[ds$id]]$mu,
              results[[ds$id]]$tau, 1000 * median(times)))
}
write_json_file(list(
  tool = "metafor::rma.glmm(measure = 'PLO', method = 'ML')",
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
                  lme4 = as.character(packageVersion("lme4"))),
  r_startup_s = t_start, library_load_s = t_lib, results = results), args[2])
