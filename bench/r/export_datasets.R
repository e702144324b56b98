# Export single-arm proportion datasets that ship with metafor (package metadat) to CSV.
#
#   Rscript bench/r/export_datasets.R OUT_DIR
#
# Writes OUT_DIR/<id>.csv (columns study, events, n) and OUT_DIR/datasets.json (metadata).
# The copies are a cache of the benchmark run (bench/reports/cache/, git-ignored), never
# committed: the source of truth is the installed metadat package.
args <- commandArgs(TRUE)
if (length(args) != 1) stop("usage: export_datasets.R OUT_DIR")
out_dir <- args[1]
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
source(file.path(dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
  value = TRUE)[1]))), "common.R"))
suppressPackageStartupMessages(library(metadat))

get_dat <- function(name) {
  e <- new.env()
  data(list = name, package = "metadat", envir = e)
  get(name, envir = e)
}

# id -> how to read it. Chosen from metadat's "proportions" / "single-arm studies" concepts
# (see each ?dat.* page); pagliaro1992 adds the control arms of a trial dataset (k = 26, one
# zero count) as a harder case.
specs <- list(
  list(id = "pritz1997", name = "dat.pritz1997",
       what = "patients improved under hyperdynamic therapy for cerebral vasospasm",
       label = function(d) paste0("study", d$study), rows = function(d) TRUE),
  list(id = "debruin2009", name = "dat.debruin2009",
       what = "undetectable viral load in standard-care (control) groups of HAART-adherence trials",
       label = function(d) paste(d$author, d$year), rows = function(d) TRUE),
  list(id = "hannum2020", name = "dat.hannum2020",
       what = "olfactory loss among COVID-19 patients",
       label = function(d) d$authorName, rows = function(d) TRUE),
  list(id = "pagliaro1992_control", name = "dat.pagliaro1992",
       what = "first bleeding in the control arms of cirrhosis trials",
       label = function(d) paste0("study", d$study), rows = function(d) d$trt == "control")
)

meta <- list()
for (s in specs) {
  d <- get_dat(s$name)
  d <- d[s$rows(d), , drop = FALSE]
  out <- data.frame(study = make.unique(trimws(as.character(s$label(d)))),
                    events = as.integer(d$xi), n = as.integer(d$ni))
  path <- file.path(out_dir, paste0(s$id, ".csv"))
  write.csv(out, path, row.names = FALSE)
  meta[[length(meta) + 1]] <- list(
    id = s$id, csv = normalizePath(path), source = paste0("metadat::", s$name),
    metadat_version = as.character(packageVersion("metadat")), k = nrow(out),
    events = sum(out$events), n = sum(out$n), what = s$what,
    zero_or_all = sum(out$events == 0 | out$events == out$n))
}
write_json_file(meta, file.path(out_dir, "datasets.json"))
cat("exported", length(meta), "datasets to", out_dir, "\n")
