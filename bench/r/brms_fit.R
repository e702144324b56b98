# Bayesian binomial-normal model with brms (the anchor for bayes_va.fit).
#
#   Rscript bench/r/brms_fit.R MANIFEST.json OUT.json DRAWS_DIR [SEED] [CORES]
#
#   events | trials(n) ~ 1 + (1 | study), family = binomial (logit link)
#   Intercept ~ normal(0, 2.5)          (= models/base.toml priors.mu: Normal(0, 2.5))
#   sd        ~ normal(0, 1), lb = 0    (= priors.tau: HalfNormal(1))
#   4 chains x (1000 warm-up + 1000 draws), rstan backend, adapt_delta 0.8 (brms defaults,
#   the same sampler budget as the base config).
#
# Compilation and sampling are timed apart: the model is compiled once with brm(chains = 0)
# (one Stan program serves every dataset; the data are not part of it), then each dataset is
# sampled with update(fit0, newdata = ..., recompile = FALSE), once with cores = 1 (chains in
# sequence, in this process) and once with cores = CORES (parallel chains in worker processes;
# default: all cores). The draws of mu = b_Intercept and tau = sd_study__Intercept are written
# to DRAWS_DIR/<id>.csv so that the driver computes ESS and MCSE for brms and bayes_va with the
# same code.
#
# Follow-up, not timed: when brms's own diagnostics flag a dataset at the default budget
# (R-hat of tau > 1.01 or bulk ESS of tau < 400), it is sampled again with 10x the draws
# (4 x (1000 + 10000)) and those draws are written to DRAWS_DIR/<id>_long.csv, so the report
# can tell a sampler that has not converged from a model that differs.
t_start <- proc.time()[["elapsed"]]
args <- commandArgs(TRUE)
if (length(args) < 3) stop("usage: brms_fit.R MANIFEST.json OUT.json DRAWS_DIR [SEED] [CORES]")
seed <- if (length(args) >= 4) as.integer(args[4]) else 20231123L
cores <- if (length(args) >= 5) as.integer(args[5]) else parallel::detectCores()
draws_dir <- args[3]
dir.create(draws_dir, recursive = TRUE, showWarnings = FALSE)
source(file.path(dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
  value = TRUE)[1]))), "common.R"))
t0 <- elapsed()
suppressPackageStartupMessages({library(brms); library(rstan); library(posterior)})
# Debian's r-cran-bh is an empty shell; Boost comes from libboost-dev in /usr/include.
rstan_options(boost_lib = "/usr/include")
rstan_options(auto_write = FALSE)
t_lib <- elapsed() - t0

priors <- c(prior(normal(0, 2.5), class = Intercept), prior(normal(0, 1), class = sd))
formula <- bf(events | trials(n) ~ 1 + (1 | study))
datasets <- read_manifest(args[1])

t0 <- elapsed()
fit0 <- brm(formula, data = datasets[[1]]$data, family = binomial(), prior = priors,
            chains = 0, backend = "rstan", silent = 2, refresh = 0)
compile_s <- elapsed() - t0
cat(sprintf("brms compile (brm(chains = 0)): %.1f s\n", compile_s))

sample_one <- function(d, n_cores) {
  t0 <- elapsed()
  res <- with_warnings(update(fit0, newdata = d, chains = 4, cores = n_cores, iter = 2000,
                              warmup = 1000, seed = seed, recompile = FALSE, refresh = 0,
                              silent = 2))
  list(fit = res$value, wall = elapsed() - t0, warnings = res$warnings)
}

results <- list()
for (ds in datasets) {
  d <- ds$data
  serial <- sample_one(d, 1L)
  parallel <- if (cores > 1) sample_one(d, cores) else serial
  fit <- parallel$fit
  dr <- as_draws_df(fit, variable = c("b_Intercept", "sd_study__Intercept"))
  out <- data.frame(chain = dr$.chain, draw = dr$.iteration, mu = dr$b_Intercept,
                    tau = dr$sd_study__Intercept)
  draws_csv <- file.path(draws_dir, paste0(ds$id, ".csv"))
  write.csv(out, draws_csv, row.names = FALSE)
  np <- nuts_params(fit)
  et <- get_elapsed_time(fit$fit)
  same <- isTRUE(all.equal(as_draws_df(serial$fit, variable = "b_Intercept")$b_Intercept,
                           dr$b_Intercept))
  results[[ds$id]] <- list(
    draws_csv = normalizePath(draws_csv),
    wall_serial_s = serial$wall, wall_parallel_s = parallel$wall, cores_parallel = cores,
    chain_warmup_s = unname(et[, "warmup"]), chain_sample_s = unname(et[, "sample"]),
    divergences = sum(np$Value[np$Parameter == "divergent__"]),
    max_treedepth_hits = sum(np$Value[np$Parameter == "treedepth__"] >= 10),
    rhat_tau = rhat(extract_variable_matrix(dr, "sd_study__Intercept")), ess_bulk_tau_posterior = ess_bulk(extract_variable_matrix(
      dr, "sd_study__Intercept")),
    serial_and_parallel_draws_identical = same,
    warnings = unique(c(serial$warnings, parallel$warnings))
  )
  cat(sprintf("brms %-22s serial %.2f s, %d cores %.2f s, divergences %d\n", ds$id,
              serial$wall, cores, parallel$wall, results[[ds$id]]$divergences))
  if (results[[ds$id]]$rhat_tau > 1.01 || results[[ds$id]]$ess_bulk_tau_posterior < 400) {
    t0 <- elapsed()
    long <- with_warnings(update(fit0, newdata = d, chains = 4, cores = cores, iter = 11000,
                                 warmup = 1000, seed = seed, recompile = FALSE, refresh = 0,
                                 silent = 2))
    lw <- elapsed() - t0
    ld <- as_draws_df(long$value, variable = c("b_Intercept", "sd_study__Intercept"))
    long_csv <- file.path(draws_dir, paste0(ds$id, "_long.csv"))
    write.csv(data.frame(chain = ld$.chain, draw = ld$.iteration, mu = ld$b_Intercept,
                         tau = ld$sd_study__Intercept), long_csv, row.names = FALSE)
    lnp <- nuts_params(long$value)
    results[[ds$id]]$long <- list(
      draws_csv = normalizePath(long_csv), iter = 11000L, warmup = 1000L, wall_s = lw,
      divergences = sum(lnp$Value[lnp$Parameter == "divergent__"]),
      rhat_tau = rhat(extract_variable_matrix(ld, "sd_study__Intercept")),
      warnings = long$warnings)
    cat(sprintf("brms %-22s flagged (R-hat(tau) %.3f, ESS(tau) %.0f): 10x draws in %.1f s\n",
                ds$id, results[[ds$id]]$rhat_tau, results[[ds$id]]$ess_bulk_tau_posterior, lw))
  }
}
write_json_file(list(
  tool = "brms::brm(events | trials(n) ~ 1 + (1 | study), binomial, rstan)",
  versions = list(R = R.version.string, brms = as.character(packageVersion("brms")),
                  rstan = as.character(packageVersion("rstan"))),
  seed = seed, r_startup_s = t_start, library_load_s = t_lib, compile_s = compile_s,
  stan_code = as.character(stancode(fit0)), results = results), args[2])
