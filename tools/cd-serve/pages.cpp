#include "cd-serve/pages.h"

#include <nlohmann/json.hpp>

#include "domain/labels.h"

namespace cd::serve {

namespace {

using json = nlohmann::ordered_json;

json error_response(const std::string& description) {
  return {
      {"description", description},
      {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}};
}

json json_response(const std::string& description, const std::string& schema) {
  return {{"description", description},
          {"content",
           {{"application/json", {{"schema", {{"$ref", "#/components/schemas/" + schema}}}}}}}};
}

json schemas() {
  json prediction = {
      {"type", "object"},
      {"required",
       {"class_label", "probability", "p_dog", "prediction_time_ms", "timestamp", "model_version"}},
      {"properties",
       {{"class_label", {{"type", "string"}, {"enum", class_names()}}},
        {"probability", {{"type", "number"}, {"description", "confidence of class_label"}}},
        {"p_dog", {{"type", "number"}, {"description", "P(dog)"}}},
        {"prediction_time_ms", {{"type", "number"}}},
        {"timestamp", {{"type", "string"}, {"format", "date-time"}}},
        {"model_version", {{"type", "string"}}}}}};
  json error = {{"type", "object"},
                {"properties",
                 {{"error",
                   {{"type", "object"},
                    {"properties",
                     {{"code", {{"type", "integer"}}},
                      {"message", {{"type", "string"}}},
                      {"type", {{"type", "string"}}}}}}}}}};
  json v2_error = {{"type", "object"},
                   {"required", {"error"}},
                   {"properties", {{"error", {{"type", "string"}}}}}};
  json tensor = {{"type", "object"},
                 {"required", {"name", "datatype", "shape"}},
                 {"properties",
                  {{"name", {{"type", "string"}, {"enum", {"image", "input"}}}},
                   {"datatype", {{"type", "string"}, {"enum", {"BYTES", "FP32"}}}},
                   {"shape", {{"type", "array"}, {"items", {{"type", "integer"}}}}},
                   {"data", {{"type", "array"}}},
                   {"parameters", {{"type", "object"}}}}}};
  json infer_request = {{"type", "object"},
                        {"required", {"inputs"}},
                        {"properties",
                         {{"id", {{"type", "string"}}},
                          {"parameters", {{"type", "object"}}},
                          {"inputs", {{"type", "array"}, {"items", tensor}}},
                          {"outputs",
                           {{"type", "array"},
                            {"items",
                             {{"type", "object"},
                              {"properties",
                               {{"name", {{"type", "string"}, {"enum", {"p_dog", "label"}}}},
                                {"parameters", {{"type", "object"}}}}}}}}}}}};
  return {{"Prediction", prediction},
          {"Error", error},
          {"V2Error", v2_error},
          {"V2InferRequest", infer_request}};
}

// A GET route answering 200 with `description`, plus any extra responses.
json get_route(const std::string& summary, const std::string& description,
               json extra = json::object()) {
  json responses = {{"200", {{"description", description}}}};
  for (auto& [code, response] : extra.items()) responses[code] = response;
  return {{"get", {{"summary", summary}, {"responses", responses}}}};
}

json post_route(const std::string& summary, const json& content, const json& responses) {
  return {{"post",
           {{"summary", summary},
            {"security", {{{"bearer", json::array()}}, {{"apiKey", json::array()}}}},
            {"requestBody", {{"required", true}, {"content", content}}},
            {"responses", responses}}}};
}

json paths() {
  json upload = {{"multipart/form-data",
                  {{"schema",
                    {{"type", "object"},
                     {"properties", {{"file", {{"type", "string"}, {"format", "binary"}}}}}}}}},
                 {"image/*", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}};
  json errors = {{"400", error_response("not an image, or undecodable")},
                 {"401", error_response("an API key is configured and missing or wrong")},
                 {"413", error_response("body over the size limit")},
                 {"415", error_response("unsupported content type")},
                 {"503", error_response("not ready, draining, or the queue is full")}};
  json predict_responses = errors;
  predict_responses["200"] = json_response("the prediction", "Prediction");
  json batch_responses = errors;
  batch_responses["200"] = {{"description", "predictions in upload order, with per-item errors"}};
  json multipart = {{"multipart/form-data", {{"schema", {{"type", "object"}}}}}};
  return {
      {"/health",
       get_route("Liveness: 200 while the process runs",
                 "status, model_loaded, model_path, requests_served, average_latency_ms")},
      {"/ready", get_route("Readiness: 200 once the model is loaded and warmed up", "ready",
                           {{"503", error_response("not ready or draining")}})},
      {"/predict", post_route("Classify one image (multipart field 'file', or a raw image/* body)",
                              upload, predict_responses)},
      {"/predict/batch", post_route("Classify several images (multipart, one part per image)",
                                    multipart, batch_responses)},
      {"/model", get_route("The loaded model's metadata", "metadata",
                           {{"503", error_response("no model yet")}})},
      {"/metrics", get_route("Prometheus metrics (text format 0.0.4)", "metrics")},
      {"/openapi.json", get_route("This document", "OpenAPI 3")},
      {"/docs", get_route("This document as a page", "HTML")},
      {"/", get_route("A page to try the model with a photo", "HTML")}};
}

// The Open Inference Protocol (V2) routes, with its {"error": message} body.
json v2_paths() {
  json v2_error = {
      {"content",
       {{"application/json", {{"schema", {{"$ref", "#/components/schemas/V2Error"}}}}}}}};
  auto described = [&](const std::string& description) {
    json r = v2_error;
    r["description"] = description;
    return r;
  };
  json name = {{"name", "model_name"},
               {"in", "path"},
               {"required", true},
               {"schema", {{"type", "string"}}},
               {"description", "--model-name (catdog)"}};
  json version = {{"name", "model_version"},
                  {"in", "path"},
                  {"required", true},
                  {"schema", {{"type", "string"}}},
                  {"description", "the loaded model file's version hash (/model)"}};
  json flag = {{"400", {{"description", "no (the status alone answers)"}}}};
  json infer_body = {
      {"application/json", {{"schema", {{"$ref", "#/components/schemas/V2InferRequest"}}}}},
      {"application/octet-stream",
       {{"schema", {{"type", "string"}, {"format", "binary"}}},
        {"description",
         "the binary tensor data extension: Inference-Header-Content-Length bytes of JSON, then "
         "each input's binary_data_size bytes"}}}};
  json infer_responses = {
      {"200", {{"description", "outputs p_dog (FP32 [N,1]) and label (BYTES [N,1])"}}},
      {"400", described("malformed request: datatype, shape, data or binary sections")},
      {"401", described("an API key is configured and missing or wrong")},
      {"404", described("unknown model name or version")},
      {"413", described("over a body, batch, pixel or decoding budget")},
      {"503", described("not ready, draining, or the queue is full")}};
  json metadata_responses = {{"404", described("unknown model name or version")},
                             {"503", described("no model yet")}};
  auto with_params = [](json route, const json& params) {
    for (auto& [method, op] : route.items()) op["parameters"] = params;
    return route;
  };
  json infer = post_route("V2 inference: encoded images as BYTES, or a preprocessed FP32 tensor",
                          infer_body, infer_responses);
  json metadata = get_route("V2 model metadata: name, versions, inputs and outputs", "metadata",
                            metadata_responses);
  metadata["get"]["security"] = infer["post"]["security"];
  json ready = get_route("V2 model readiness", "yes", flag);
  json paths = {{"/v2", get_route("V2 server metadata: name, version, extensions", "metadata")},
                {"/v2/health/live", get_route("V2 liveness", "yes")},
                {"/v2/health/ready", get_route("V2 readiness", "yes", flag)}};
  json one = json::array({name}), both = json::array({name, version});
  paths["/v2/models/{model_name}"] = with_params(metadata, one);
  paths["/v2/models/{model_name}/ready"] = with_params(ready, one);
  paths["/v2/models/{model_name}/infer"] = with_params(infer, one);
  paths["/v2/models/{model_name}/versions/{model_version}"] = with_params(metadata, both);
  paths["/v2/models/{model_name}/versions/{model_version}/ready"] = with_params(ready, both);
  paths["/v2/models/{model_name}/versions/{model_version}/infer"] = with_params(infer, both);
  return paths;
}

}  // namespace

std::string openapi_json() {
  json doc = {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "catdog inference service"},
        {"version", "1"},
        {"description",
         "Cat or dog? Send a photo. Errors are {\"error\":{\"code\",\"message\",\"type\"}}."}}},
      {"components",
       {{"schemas", schemas()},
        {"securitySchemes",
         {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}},
          {"apiKey", {{"type", "apiKey"}, {"in", "header"}, {"name", "X-API-Key"}}}}}}},
      {"paths", paths()}};
  json v2 = v2_paths();
  for (auto& [path, route] : v2.items()) doc["paths"][path] = route;
  return doc.dump(2);
}

std::string docs_html() {
  return R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>catdog API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:820px;margin:2em auto;padding:0 1em;color:#222}
.route{border:1px solid #ddd;border-radius:6px;margin:.7em 0;padding:.6em .9em}
.m{display:inline-block;min-width:4.5em;font-weight:700;color:#fff;border-radius:4px;text-align:center;margin-right:.6em}
.get{background:#2b7bb9}.post{background:#3a9a4a}code{background:#f3f3f3;padding:0 .3em}
ul{margin:.3em 0}</style></head>
<body><h1>catdog API</h1><p id="desc"></p><div id="routes">loading /openapi.json&hellip;</div>
<script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
  document.getElementById('desc').textContent=doc.info.description;
  const box=document.getElementById('routes'); box.textContent='';
  for(const [path,ops] of Object.entries(doc.paths)) for(const [m,op] of Object.entries(ops)){
    const d=document.createElement('div'); d.className='route';
    const codes=Object.entries(op.responses).map(([c,r])=>'<li><code>'+c+'</code> '+r.description+'</li>').join('');
    d.innerHTML='<span class="m '+m+'">'+m.toUpperCase()+'</span><code>'+path+'</code> '+op.summary+
      (op.security?' <em>(API key when configured)</em>':'')+'<ul>'+codes+'</ul>';
    box.appendChild(d);
  }
});
</script></body></html>
)HTML";
}

std::string index_html() {
  return R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Cat or dog?</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:560px;margin:2em auto;padding:0 1em;color:#222;text-align:center}
#drop{border:3px dashed #aaa;border-radius:12px;padding:2em 1em;cursor:pointer;transition:.2s}
#drop.over{border-color:#2b7bb9;background:#eef6fc}
#preview{max-width:100%;max-height:320px;margin-top:1em;border-radius:8px;display:none}
#result{font-size:1.6em;font-weight:700;margin:.6em 0;min-height:1.5em}
#bar{height:10px;background:#eee;border-radius:5px;overflow:hidden}#fill{height:100%;width:0;background:#3a9a4a;transition:.3s}
#key{margin-top:1.5em;font-size:.85em;color:#666}input[type=password]{width:14em}
.error{color:#b33}</style></head>
<body>
<h1>Cat or dog?</h1>
<div id="drop">Drop a photo here, or <u>choose one</u>
<input id="file" type="file" accept="image/*" hidden></div>
<img id="preview" alt="your photo">
<div id="result" role="status"></div><div id="bar"><div id="fill"></div></div>
<p id="detail"></p>
<div id="key">API key (only if the server asks for one): <input id="apikey" type="password" autocomplete="off"></div>
<script>
const drop=document.getElementById('drop'), file=document.getElementById('file'), result=document.getElementById('result');
const keyBox=document.getElementById('apikey'); keyBox.value=localStorage.getItem('catdogKey')||'';
keyBox.addEventListener('change',()=>localStorage.setItem('catdogKey',keyBox.value));
drop.addEventListener('click',()=>file.click());
drop.addEventListener('dragover',e=>{e.preventDefault();drop.classList.add('over')});
drop.addEventListener('dragleave',()=>drop.classList.remove('over'));
drop.addEventListener('drop',e=>{e.preventDefault();drop.classList.remove('over');if(e.dataTransfer.files[0])classify(e.dataTransfer.files[0])});
file.addEventListener('change',()=>{if(file.files[0])classify(file.files[0])});
async function classify(f){
  const img=document.getElementById('preview'); img.src=URL.createObjectURL(f); img.style.display='inline';
  result.className=''; result.textContent='Thinking…'; document.getElementById('fill').style.width='0';
  const form=new FormData(); form.append('file',f);
  const headers=keyBox.value?{'Authorization':'Bearer '+keyBox.value}:{};
  try{
    const r=await fetch('/predict',{method:'POST',body:form,headers});
    const body=await r.json();
    if(!r.ok){result.className='error';result.textContent=body.error?body.error.message:('HTTP '+r.status);return;}
    const pct=(body.probability*100).toFixed(1);
    result.textContent=(body.class_label==='dog'?'Dog':'Cat')+' — '+pct+'%';
    document.getElementById('fill').style.width=pct+'%';
    document.getElementById('detail').textContent='P(dog) = '+body.p_dog.toFixed(4)+' · '+body.prediction_time_ms.toFixed(1)+' ms · model '+body.model_version;
  }catch(e){result.className='error';result.textContent='Request failed: '+e;}
}
</script></body></html>
)HTML";
}

}  // namespace cd::serve
