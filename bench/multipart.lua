-- wrk script: POST one real JPEG as multipart field "file" (the original API's contract).
local f = assert(io.open(os.getenv("BENCH_IMAGE"), "rb"))
local image = f:read("*a")
f:close()
local boundary = "catdogbenchboundary"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n" ..
  "Content-Type: image/jpeg\r\n\r\n" .. image .. "\r\n--" .. boundary .. "--\r\n"
