// Fuzz target for Redis URLs (worker/redis_connection.h): any text through ParseRedisUrl,
// RedisEndpoint::Redacted and RedactUrlText, which must return and keep what docs/queue.md
// and docs/status.md promise:
//   - a URL that parses has a port 1 to 65535, a db of 0 or more, and a unix socket path
//     that is absolute;
//   - its redacted form (what every message, log and status shows) parses back to the same
//     place and, when there is a password, the same user, with the password "***";
//   - a password never appears in a redacted form: the input's second part is spliced in as
//     a password around a marker, which neither Redacted() nor RedactUrlText may show.
// scripts/fuzz runs it with libFuzzer; ctest replays tests/fuzz/corpus/redis_url.
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "worker/redis_connection.h"

namespace {

using lk::fuzz::Check;

constexpr std::string_view kMarker = "Pw9Marker";

bool Plain(const std::string& s) { return s.find_first_of("@:/?%") == std::string::npos; }

void CheckParsed(const std::string& url) {
  auto ep = lk::ParseRedisUrl(url);
  if (!ep.ok()) {
    Check(ep.status().message().starts_with("bad Redis URL '"), "a refusal says so: " + url);
    Check(lk::fuzz::OneLine(ep.status().message()) || !lk::fuzz::OneLine(url),
          "a refusal is one line");
    return;
  }
  Check(ep->port >= 1 && ep->port <= 65535, "a port is 1 to 65535: " + url);
  Check(ep->db >= 0, "a db is 0 or more: " + url);
  Check(ep->unix_path.empty() || ep->unix_path.front() == '/', "a socket path is absolute");
  const std::string shown = ep->Redacted();
  if (!ep->password.empty()) {
    Check(shown.find(ep->username + ":***@") != std::string::npos,
          "a redacted URL says a password is there, as ***: " + shown);
  }
  // Where the user name needs no escaping, the redacted URL names the same place.
  if (!Plain(ep->username) || ep->host.find_first_of("@/?") != std::string::npos) return;
  auto again = lk::ParseRedisUrl(shown);
  Check(again.ok(), "a redacted URL parses: " + shown);
  // (A user name without a password is never sent to Redis, and not shown.)
  Check(again->host == ep->host && again->port == ep->port && again->db == ep->db &&
            again->unix_path == ep->unix_path &&
            again->username == (ep->password.empty() ? "" : ep->username) &&
            again->password == (ep->password.empty() ? "" : "***"),
        "a redacted URL names the same place and user: " + url + " -> " + shown);
}

// url holds kMarker once, inside what it writes as the password.
void CheckHidden(const std::string& url) {
  if (url.find(kMarker) != url.rfind(kMarker)) return;
  Check(lk::RedactUrlText(url).find(kMarker) == std::string::npos,
        "RedactUrlText hides the password: " + url);
  auto ep = lk::ParseRedisUrl(url);
  if (ep.ok()) {
    Check(ep->password.find(kMarker) != std::string::npos, "the password is read as one");
    Check(ep->Redacted().find(kMarker) == std::string::npos, "Redacted hides the password");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckParsed(text);
  // The same bytes as the parts of a URL with a password: SCHEME USER \x01 PASSWORD \x01 REST.
  static constexpr std::string_view kSchemes[] = {"redis://", "unix://", "http://"};
  if (size == 0) return 0;
  std::string rest = text.substr(1);
  size_t a = rest.find('\x01');
  size_t b = a == std::string::npos ? std::string::npos : rest.find('\x01', a + 1);
  if (b == std::string::npos) return 0;
  std::string user = rest.substr(0, a), password = rest.substr(a + 1, b - a - 1);
  std::string tail = rest.substr(b + 1);
  if (user.find('@') != std::string::npos) return 0;  // the userinfo ends at the last '@'
  const std::string url = std::string(kSchemes[static_cast<uint8_t>(text[0]) % 3]) + user + ":" +
                          password + std::string(kMarker) + "@" + tail;
  CheckParsed(url);
  CheckHidden(url);
  return 0;
}
