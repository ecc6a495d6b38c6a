// Small string helpers every layer uses, so each is written once.
#pragma once

#include <string>
#include <string_view>

namespace cd {

// ASCII lower case; bytes above 0x7F are left as they are.
std::string to_lower(std::string_view text);

bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);

// True when the bytes are well-formed UTF-8 (no overlongs, surrogates or
// code points above U+10FFFF).
bool valid_utf8(std::string_view text);

// One field of tab-separated output: backslash, tab, CR and LF become \\, \t,
// \r and \n, so a file name holding them stays one field of one line.
std::string escape_tsv(std::string_view field);

// Without leading and trailing spaces, tabs and line ends.
std::string trim(std::string_view text);

}  // namespace cd
