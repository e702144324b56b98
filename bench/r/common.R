# Shared helpers for the R anchor scripts (bench/r/*.R). Sourced, never run on its own.
# R is a benchmark-only dependency of bayes_va: see bench/README.md ("R anchors").

suppressPackageStartupMessages(library(jsonlite))

script_dir <- function() {
  arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(arg)) dirname(normalizePath(sub("^--file=", "", arg[1]))) else "."
}

# A manifest is a JSON list of {"id": ..., "csv": ...}; every CSV has columns study, events, n.
read_manifest <- function(path) {
  m <- fromJSON(path, simplifyVector = FALSE)
  lapply(m, function(e) {
    d <- read.csv(e$csv, colClasses = c(study = "character"))
    stopifnot(all(c("study", "events", "n") %in% names(d)))
    list(id = e$id, data = d)
  })
}

write_json_file <- function(x, path) {
  tmp <- paste0(path, ".tmp")
  writeLines(toJSON(x, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
             tmp)
  invisible(file.rename(tmp, path))
}

# wall clock in seconds (microsecond resolution; proc.time() only has milliseconds)
elapsed <- function() as.numeric(Sys.time())

# Evaluate expr, collecting warnings instead of printing them; returns list(value, warnings).
with_warnings <- function(expr) {
  w <- character()
  value <- withCallingHandlers(expr, warning = function(cond) {
    w <<- c(w, conditionMessage(cond))
    invokeRestart("muffleWarning")
  })
  list(value = value, warnings = unique(w))
}
