// Static content of cd-serve: the OpenAPI description, the /docs page that
// renders it, and the self-contained upload page at /.
#pragma once

#include <string>

namespace cd::serve {

std::string openapi_json();
std::string docs_html();
std::string index_html();

}  // namespace cd::serve
