// Small string helpers every layer uses, so each is written once.
#pragma once

#include <string>
#include <string_view>

namespace cd {

// ASCII lower case; bytes above 0x7F are left as they are.
std::string to_lower(std::string_view text);

bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);

// Without leading and trailing spaces, tabs and line ends.
std::string trim(std::string_view text);

}  // namespace cd
