#include "controller/kube/kube_secret.h"

namespace lk::kube {

std::optional<std::string> Base64Decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    int v = value(c);
    if (v < 0 || padding) return std::nullopt;  // a character after '=' is not base64 either
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone sixth of a byte
  return out;
}

std::optional<std::string> SecretValue(const Json& secret, const std::string& key) {
  if (!secret.is_object() || !secret.contains("data") || !secret["data"].is_object()) return std::nullopt;
  const Json& data = secret["data"];
  auto it = data.find(key);
  if (it == data.end() || !it->is_string()) return std::nullopt;
  return Base64Decode(it->get<std::string>());
}

}  // namespace lk::kube
