modules --no-cache testdata/sample-x64-19041.dmp.gz
