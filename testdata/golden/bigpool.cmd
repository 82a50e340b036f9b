bigpool --tag Leak --top 5 --no-cache testdata/sample-x64-19041.dmp.gz
