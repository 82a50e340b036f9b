/* -j N: analyse dumps in parallel, print results in argument order. */
#ifndef DL_JOBS_H
#define DL_JOBS_H

#include "cli.h"

/* Runs analyse() over paths with up to jobs workers and calls emit() for
 * each result in argument order; returns the highest exit code. */
int run_jobs(const options *o, const char **paths, int npaths, int jobs, void (*emit)(const options *, result *));

#endif
