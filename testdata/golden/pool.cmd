pool --sort nonpaged --top 15 --no-cache testdata/sample-x64-19041.dmp.gz
