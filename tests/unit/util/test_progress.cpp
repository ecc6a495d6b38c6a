#include <catch2/catch.hpp>
#include <sstream>

#include "util/progress.h"

TEST_CASE("a terminal bar redraws in place with rate and ETA", "[progress]") {
  std::ostringstream out;
  double now = 0;
  {
    cd::Progress p("train", 100, out, cd::Progress::Style::k_bar, 1.0, [&] { return now; });
    now = 10;
    p.advance(50);
  }
  std::string s = out.str();
  CHECK(s.find("\rtrain [############            ]  50% 50/100 5.0/s elapsed 0:10 ETA 0:10") !=
        std::string::npos);
  CHECK(s.back() == '\n');
}

TEST_CASE("plain lines appear only once per interval", "[progress]") {
  std::ostringstream out;
  double now = 0;
  cd::Progress p("decode", 1000, out, cd::Progress::Style::k_lines, 10.0, [&] { return now; });
  for (int i = 0; i < 5; ++i) {
    now += 1;
    p.advance(10);
  }
  CHECK(out.str().empty());
  now = 12;
  p.advance(10);
  CHECK(out.str() == "decode   6% 60/1000 5.0/s elapsed 0:12 ETA 3:08\n");
  p.finish();
  p.finish();
  CHECK(out.str().find("decode") != out.str().rfind("decode"));  // the final line was drawn once
  CHECK(cd::Progress::format_duration(3725) == "1:02:05");
}
