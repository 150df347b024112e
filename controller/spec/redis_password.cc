#include "controller/spec/redis_password.h"

#include <filesystem>
#include <fstream>

#include "worker/atomic_file.h"
#include "worker/redis_connection.h"

namespace lk {

namespace redis_password_impl {

// Where userinfo sits in url: [start, at) with at the last '@'; npos when there is none.
std::pair<size_t, size_t> Userinfo(std::string_view url) {
  size_t scheme = url.find("://");
  size_t at = url.rfind('@');
  if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) {
    return {std::string_view::npos, std::string_view::npos};
  }
  return {scheme + 3, at};
}

std::string PercentEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace redis_password_impl

std::string UrlWithoutPassword(std::string_view url) {
  auto [start, at] = redis_password_impl::Userinfo(url);
  if (start == std::string_view::npos) return std::string(url);
  std::string_view userinfo = url.substr(start, at - start);
  size_t colon = userinfo.find(':');
  std::string user = colon == std::string_view::npos || colon == 0
                         ? ""
                         : std::string(userinfo.substr(0, colon)) + ":@";
  return std::string(url.substr(0, start)) + user + std::string(url.substr(at + 1));
}

std::string UrlWithPassword(std::string_view url, std::string_view password) {
  std::string bare = UrlWithoutPassword(url);
  size_t start = bare.find("://") + 3;
  std::string user;
  if (size_t at = bare.find('@', start); at != std::string::npos) {
    user = bare.substr(start, at - start - 1);  // "user:@" -> "user"
    bare.erase(start, at + 1 - start);
  }
  return bare.substr(0, start) + user + ":" + redis_password_impl::PercentEncode(password) + "@" +
         bare.substr(start);
}

StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Status::InvalidArgument("cannot read the Redis password from " + path);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return Status::InvalidArgument(path + ": the Redis password is empty");
  return line;
}

std::string KeptPasswordPath(const std::string& specs_dir, const std::string& lane_name) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(specs_dir, ec);
  return (dir.lexically_normal() / ".secrets" / (lane_name + ".redis-password")).string();
}

Status KeepInlinePassword(const std::string& specs_dir, const LaneSpec& lane) {
  if (!lane.redis_password_file.empty()) return Status::OK();
  auto ep = ParseRedisUrl(lane.redis_url);
  if (!ep.ok() || ep->password.empty()) return Status::OK();
  namespace fs = std::filesystem;
  std::string path = KeptPasswordPath(specs_dir, lane.name);
  std::error_code ec;
  fs::path dir = fs::path(path).parent_path();
  fs::create_directories(dir, ec);
  if (!ec) fs::permissions(dir, fs::perms::owner_all, ec);
  if (ec) return Status::Internal("cannot create " + dir.string() + ": " + ec.message());
  if (auto kept = ReadPasswordFile(path); kept.ok() && *kept == ep->password) return Status::OK();
  return WriteFileAtomically(path, ep->password + "\n", 0600);
}

std::string PasswordReference(const std::string& specs_dir, const LaneSpec& lane) {
  if (!lane.redis_password_file.empty()) return lane.redis_password_file;
  auto ep = ParseRedisUrl(lane.redis_url);
  if (!ep.ok() || ep->password.empty()) return "";
  return KeptPasswordPath(specs_dir, lane.name);
}

}  // namespace lk
