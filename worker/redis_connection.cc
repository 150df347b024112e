#include "worker/redis_connection.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <sys/un.h>

#include <charconv>
#include <cstdlib>

namespace lk {

namespace {

std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec == std::errc() && r.ptr == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool ParseInt(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_NIL: out.type = RedisReply::Type::kNil; break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default: out.type = RedisReply::Type::kNil;
  }
  return out;
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = ms.count() / 1000;
  tv.tv_usec = (ms.count() % 1000) * 1000;
  return tv;
}

}  // namespace

std::string RedactUrlText(std::string_view url) {
  // Between the scheme and the last '@' is userinfo: keep a user name, hide the rest. Text
  // without a "://" before its '@' is too mangled to tell a user from a password: all of
  // it up to the '@' goes.
  size_t at = url.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos || scheme > at) return "***" + std::string(url.substr(at));
  size_t start = scheme + 3;
  std::string_view userinfo = url.substr(start, at - start);
  size_t colon = userinfo.find(':');
  std::string user =
      colon == std::string_view::npos ? "" : std::string(userinfo.substr(0, colon)) + ":";
  return std::string(url.substr(0, start)) + user + "***" + std::string(url.substr(at));
}

std::string RedisEndpoint::Redacted() const {
  std::string auth = password.empty() ? "" : (username + ":***@");
  if (!unix_path.empty()) {
    return "unix://" + auth + unix_path + (db != 0 ? "?db=" + std::to_string(db) : "");
  }
  return "redis://" + auth + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

static_assert(kMaxUnixSocketPath == sizeof(sockaddr_un::sun_path) - 2);

std::string UnixSocketPathTooLong(size_t length) {
  return "a unix socket path is at most " + std::to_string(kMaxUnixSocketPath) +
         " bytes (hiredis 0.14), this one is " + std::to_string(length);
}

StatusOr<RedisEndpoint> ParseRedisUrl(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad Redis URL '" + RedactUrlText(url) + "': " + why +
                                   " (expected redis://[:password@]host[:port][/db] or "
                                   "unix://[:password@]/path.sock[?db=N])");
  };
  RedisEndpoint ep;
  std::string_view rest;
  bool is_unix = false;
  if (url.starts_with("redis://")) {
    rest = url.substr(8);
  } else if (url.starts_with("unix://")) {
    rest = url.substr(7);
    is_unix = true;
  } else {
    return bad("unknown scheme");
  }
  // userinfo: everything before the last '@' (passwords may contain '@' when encoded).
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      ep.username = UrlDecode(userinfo.substr(0, colon));
      ep.password = UrlDecode(userinfo.substr(colon + 1));
    } else {
      ep.password = UrlDecode(userinfo);
    }
  }
  if (is_unix) {
    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest[0] != '/') return bad("a unix socket path must be absolute");
    if (rest.size() > kMaxUnixSocketPath) return bad(UnixSocketPathTooLong(rest.size()));
    ep.unix_path = std::string(rest);
    if (!query.empty()) {
      if (!query.starts_with("db=") || !ParseInt(query.substr(3), ep.db) || ep.db < 0) {
        return bad("the only query parameter is db=N");
      }
    }
    return ep;
  }
  std::string_view hostport = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!ParseInt(db, ep.db) || ep.db < 0)) return bad("db must be a number");
  }
  if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    if (!ParseInt(hostport.substr(colon + 1), ep.port) || ep.port <= 0 || ep.port > 65535) {
      return bad("port must be 1-65535");
    }
    hostport = hostport.substr(0, colon);
  }
  if (!hostport.empty()) ep.host = std::string(hostport);
  return ep;
}

std::string DefaultRedisUrl() {
  const char* env = std::getenv("LANEKEEPER_REDIS_URL");
  return env && *env ? env : "redis://127.0.0.1:6379/0";
}

long long RedisReply::AsInt() const {
  if (type == Type::kInteger) return integer;
  if (type == Type::kString || type == Type::kStatus) {
    long long v = 0;
    std::from_chars(str.data(), str.data() + str.size(), v);
    return v;
  }
  return 0;
}

LuaScript::LuaScript(std::string name, std::string_view source)
    : name_(std::move(name)), source_(source) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source.data()), source.size(), digest);
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : digest) {
    sha1_.push_back(hex[c >> 4]);
    sha1_.push_back(hex[c & 15]);
  }
}

struct RedisConnection::Impl {
  redisContext* ctx = nullptr;
  ~Impl() {
    if (ctx) redisFree(ctx);
  }
};

RedisConnection::RedisConnection(RedisEndpoint endpoint)
    : endpoint_(std::move(endpoint)), impl_(std::make_unique<Impl>()) {}

RedisConnection::~RedisConnection() = default;

StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    const RedisEndpoint& endpoint, std::chrono::milliseconds timeout) {
  std::unique_ptr<RedisConnection> conn(new RedisConnection(endpoint));
  conn->connect_timeout_ = timeout;
  conn->read_timeout_ = timeout;
  Status s = conn->Open(timeout);
  if (!s.ok()) return s;
  return conn;
}

Status RedisConnection::Open(std::chrono::milliseconds timeout) {
  if (impl_->ctx) {
    redisFree(impl_->ctx);
    impl_->ctx = nullptr;
  }
  timeval tv = ToTimeval(timeout);
  redisContext* c = endpoint_.unix_path.empty()
                        ? redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, tv)
                        : redisConnectUnixWithTimeout(endpoint_.unix_path.c_str(), tv);
  if (c == nullptr) return Status::Unavailable("cannot allocate a Redis context");
  if (c->err) {
    std::string err = c->errstr;
    redisFree(c);
    return Status::Unavailable("cannot connect to Redis at " + endpoint_.Redacted() + ": " + err);
  }
  fcntl(c->fd, F_SETFD, fcntl(c->fd, F_GETFD) | FD_CLOEXEC);
  redisSetTimeout(c, ToTimeval(read_timeout_));
  impl_->ctx = c;
  if (!endpoint_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!endpoint_.username.empty()) auth.push_back(endpoint_.username);
    auth.push_back(endpoint_.password);
    auto r = Command(auth);
    if (!r.ok()) return r.status();
    if (r->is_error()) {
      return Status::InvalidArgument("Redis at " + endpoint_.Redacted() +
                                     " refused the password: " + r->str);
    }
  }
  if (endpoint_.db != 0) {
    auto r = Command({"SELECT", std::to_string(endpoint_.db)});
    if (!r.ok()) return r.status();
    if (r->is_error()) {
      return Status::InvalidArgument("Redis at " + endpoint_.Redacted() + " refused db " +
                                     std::to_string(endpoint_.db) + ": " + r->str);
    }
  }
  return Status::OK();
}

Status RedisConnection::Reconnect() { return Open(connect_timeout_); }

void RedisConnection::SetReadTimeout(std::chrono::milliseconds timeout) {
  read_timeout_ = timeout;
  if (impl_->ctx) redisSetTimeout(impl_->ctx, ToTimeval(timeout));
}

void RedisConnection::Append(const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  if (impl_->ctx) {
    redisAppendCommandArgv(impl_->ctx, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  }
}

StatusOr<RedisReply> RedisConnection::GetReply() {
  if (!impl_->ctx) return Status::Unavailable("not connected to Redis at " + endpoint_.Redacted());
  void* raw = nullptr;
  if (redisGetReply(impl_->ctx, &raw) != REDIS_OK || raw == nullptr) {
    std::string err = impl_->ctx->errstr[0] ? impl_->ctx->errstr : "connection lost";
    // A broken context cannot be reused; the caller reconnects.
    redisFree(impl_->ctx);
    impl_->ctx = nullptr;
    return Status::Unavailable("Redis at " + endpoint_.Redacted() + ": " + err);
  }
  RedisReply out = Convert(static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return out;
}

StatusOr<RedisReply> RedisConnection::Command(const std::vector<std::string>& argv) {
  if (!impl_->ctx) return Status::Unavailable("not connected to Redis at " + endpoint_.Redacted());
  Append(argv);
  return GetReply();
}

void RedisConnection::AppendScript(const LuaScript& script, const std::vector<std::string>& keys,
                                   const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  Append(argv);
}

StatusOr<RedisReply> RedisConnection::FinishScript(const LuaScript& script,
                                                   const std::vector<std::string>& keys,
                                                   const std::vector<std::string>& args,
                                                   RedisReply reply) {
  if (reply.is_error() && reply.str.starts_with("NOSCRIPT")) {
    std::vector<std::string> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.push_back("EVAL");
    argv.emplace_back(script.source());
    argv.push_back(std::to_string(keys.size()));
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = Command(argv);
    if (!r.ok()) return r.status();
    reply = std::move(r).value();
  }
  if (reply.is_error()) {
    // Our scripts signal refusals with redis.error_reply("LK <message>").
    if (auto pos = reply.str.find("LK "); pos != std::string::npos) {
      std::string msg = reply.str.substr(pos + 3);
      if (auto script_pos = msg.find(" script:"); script_pos != std::string::npos) {
        msg.resize(script_pos);
      }
      return Status::FailedPrecondition(msg);
    }
    return Status::Internal("Lua script '" + script.name() + "' failed: " + reply.str);
  }
  return reply;
}

StatusOr<RedisReply> RedisConnection::RunScript(const LuaScript& script,
                                                const std::vector<std::string>& keys,
                                                const std::vector<std::string>& args) {
  AppendScript(script, keys, args);
  auto r = GetReply();
  if (!r.ok()) return r.status();
  return FinishScript(script, keys, args, std::move(r).value());
}

}  // namespace lk
