// The status server's HTTP/1.1 listener, in one file on purpose (about 600 lines): one poll
// loop owns every connection, and its limits (header size, no bodies, header and idle
// timeouts, the connection cap) are each a few lines of that loop's state machine; split,
// they would have to share the connection struct and the loop's clock. Parsing a request
// head is the one pure part, at the top.
#include "controller/status/http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <string_view>
#include <thread>

namespace lk {

namespace http_server_impl {

using Steady = std::chrono::steady_clock;

// A connection while the accepting thread owns it: waiting for (the rest of) a request,
// idle between kept-alive requests, or discarding what a client sends after an answer
// that closes the connection (a 413's body), so that the close does not reset the
// connection before the client has read the answer.
struct Conn {
  enum class State { kRequest, kIdle, kDiscard };
  int fd = -1;
  State state = State::kRequest;
  std::string in;
  Steady::time_point deadline;
  Steady::time_point waiting_since;
  ~Conn() {
    if (fd >= 0) ::close(fd);
  }
};

// A request line and headers, parsed. error: 0, or the status to answer with.
struct RequestHead {
  int error = 0;
  std::string method;
  std::string target;
  bool keep_alive = true;
  bool has_body = false;
  std::string authorization;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Where the blank line that ends the headers starts, and how long it is; npos if absent.
std::pair<size_t, size_t> FindHeadEnd(std::string_view in) {
  size_t crlf = in.find("\r\n\r\n");
  size_t lf = in.find("\n\n");
  if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf)) {
    return {crlf, 4};
  }
  return {lf, 2};
}

RequestHead ParseHead(std::string_view head) {
  RequestHead h;
  size_t eol = head.find('\n');
  std::string_view line = Trim(head.substr(0, eol));
  head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 1);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    h.error = 400;
    return h;
  }
  h.method = std::string(line.substr(0, sp1));
  h.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    h.error = 400;
    return h;
  }
  h.keep_alive = version == "HTTP/1.1";
  while (!head.empty()) {
    eol = head.find('\n');
    line = Trim(head.substr(0, eol));
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 1);
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      h.error = 400;
      return h;
    }
    std::string name = Lower(Trim(line.substr(0, colon)));
    std::string_view value = Trim(line.substr(colon + 1));
    if (name == "content-length") {
      uint64_t n = 0;
      auto r = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size()) {
        h.error = 400;
        return h;
      }
      h.has_body |= n > 0;
    } else if (name == "transfer-encoding") {
      h.has_body = true;
    } else if (name == "connection") {
      std::string v = Lower(value);
      if (v == "close") h.keep_alive = false;
      if (v == "keep-alive") h.keep_alive = true;
    } else if (name == "authorization") {
      h.authorization = std::string(value);
    }
  }
  return h;
}

// Compares in time that depends on want's length alone, so that the time an answer takes
// tells nothing of how much of a guessed token was right.
bool TokenMatches(std::string_view given, std::string_view want) {
  unsigned char diff = given.size() != want.size();
  for (size_t i = 0; i < want.size(); ++i) {
    diff |= static_cast<unsigned char>((i < given.size() ? given[i] : 0) ^ want[i]);
  }
  return diff == 0;
}

bool BearerMatches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "bearer ";
  bool scheme = authorization.size() >= kScheme.size() &&
                Lower(authorization.substr(0, kScheme.size())) == kScheme;
  std::string_view given = scheme ? Trim(authorization.substr(kScheme.size())) : authorization;
  return TokenMatches(given, token) && scheme;
}

const char* Reason(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string Serialize(const HttpResponse& r, bool with_body, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(r.code) + " " + Reason(r.code) + "\r\n";
  if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  if (with_body) out += r.body;
  return out;
}

HttpResponse ErrorResponse(int code, const std::string& message) {
  HttpResponse r{code, "text/plain; charset=utf-8", message + "\n", {}};
  if (code == 405) r.headers.emplace_back("Allow", "GET, HEAD");
  if (code == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"lanekeeper\"");
  return r;
}

// Writes all of data to a non-blocking socket by deadline. False when the client is gone
// or too slow.
bool WriteAll(int fd, std::string_view data, Steady::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
      continue;
    }
    return false;
  }
  return true;
}

// host:port, host possibly [v6]; port 0..65535 (0: one the kernel picks).
Status SplitAddr(const std::string& addr, std::string& host, std::string& port) {
  auto bad = [&] {
    return Status::InvalidArgument("status server: bad address '" + addr +
                                   "': expected host:port, e.g. 127.0.0.1:8081");
  };
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad();
  host = addr.substr(0, colon);
  port = addr.substr(colon + 1);
  if (host.find(':') != std::string::npos && !(host.front() == '[' && host.back() == ']')) {
    return bad();
  }
  if (host.find_first_of("/?#@ ") != std::string::npos) return bad();
  int p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p < 0 ||
      p > 65535) {
    return bad();
  }
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  return Status::OK();
}

struct AddrInfoList {
  addrinfo* head = nullptr;
  ~AddrInfoList() {
    if (head) freeaddrinfo(head);
  }
};

int Resolve(const std::string& host, const std::string& port, AddrInfoList& out) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  return getaddrinfo(host.c_str(), port.c_str(), &hints, &out.head);
}

bool IsLoopback(const sockaddr* a) {
  if (a->sa_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr) >> 24) == 127;
  }
  if (a->sa_family == AF_INET6) {
    const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

class PollHttpServer : public HttpServer {
 public:
  PollHttpServer(const HttpServerOptions& options, Handler handler)
      : options_(options), handler_(std::move(handler)) {}

  ~PollHttpServer() override {
    Stop();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  Status Listen(const addrinfo& ai) {
    auto failed = [&](const char* call) {
      return Status::Unavailable("status server: cannot listen on " + options_.addr + ": " +
                                 call + ": " + std::strerror(errno));
    };
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) return failed("eventfd");
    listen_fd_ = ::socket(ai.ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0) return failed("socket");
    int one = 1;
    if (::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return failed("setsockopt");
    }
    if (::bind(listen_fd_, ai.ai_addr, ai.ai_addrlen) != 0) return failed("bind");
    if (::listen(listen_fd_, 128) != 0) return failed("listen");
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.ss_family == AF_INET6
                      ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                      : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    loop_ = std::thread([this] { Loop(); });
    for (int i = 0; i < std::max(1, options_.handler_threads); ++i) {
      workers_.emplace_back([this] { Work(); });
    }
    return Status::OK();
  }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    Wake();
    if (loop_.joinable()) loop_.join();
    for (auto& w : workers_) w.join();
    workers_.clear();
    jobs_.clear();
    returned_.clear();
  }

  int port() const override { return port_; }

 private:
  struct Job {
    std::unique_ptr<Conn> conn;
    HttpRequest request;
    bool keep_alive = false;
  };

  void Wake() {
    uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  // The accepting thread: poll the listener, the wake-up and every connection it owns;
  // read requests, answer the refused ones itself, hand the rest to the workers.
  void Loop() {
    std::vector<pollfd> fds;
    while (!Stopping()) {
      TakeReturned();
      auto now = Steady::now();
      Steady::time_point next = now + std::chrono::seconds(1);
      fds.assign({{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
      for (const auto& c : conns_) {
        fds.push_back({c->fd, POLLIN, 0});
        next = std::min(next, c->deadline);
      }
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
      if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(wait, 0) + 1)) < 0 &&
          errno != EINTR) {
        break;
      }
      if (fds[1].revents) {
        uint64_t n;
        (void)!::read(wake_fd_, &n, sizeof(n));
      }
      // Connections first (indices match fds[2..]), then the listener, then the clock.
      std::vector<std::unique_ptr<Conn>> kept;
      for (size_t i = 0; i < conns_.size(); ++i) {
        std::unique_ptr<Conn>& c = conns_[i];
        if (fds[i + 2].revents) {
          if (!ReadFrom(*c)) continue;
          if (c->state == Conn::State::kRequest && !TryRequest(c)) continue;
        }
        if (Steady::now() >= c->deadline) continue;
        kept.push_back(std::move(c));
      }
      conns_ = std::move(kept);
      if (fds[0].revents) AcceptAll();
    }
    conns_.clear();
  }

  // Reads what the client sent; false when the connection is done (closed, or discarded
  // long enough).
  bool ReadFrom(Conn& c) {
    char buf[16 * 1024];
    // A bounded number of reads per round: a client sending a body as fast as loopback
    // allows must not keep this thread from the others.
    for (int round = 0; round < 64; ++round) {
      ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      if (c.state == Conn::State::kDiscard) continue;
      if (c.state == Conn::State::kIdle) {
        c.state = Conn::State::kRequest;
        c.deadline = Steady::now() + options_.header_timeout;
      }
      // Never hold more than a request head's worth: past it the answer is 431 anyway.
      size_t room = options_.max_header_bytes + 4 - std::min(c.in.size(),
                                                            options_.max_header_bytes + 4);
      c.in.append(buf, std::min(static_cast<size_t>(n), room));
      if (room <= static_cast<size_t>(n)) return true;
    }
    return true;
  }

  // Answers c's request if it is complete. False when c was handed to a worker (c is then
  // null); true when c stays with this thread (waiting for more, or refused and closing).
  bool TryRequest(std::unique_ptr<Conn>& c) {
    auto [end, sep] = FindHeadEnd(c->in);
    if (end == std::string::npos || end + sep > options_.max_header_bytes) {
      if (c->in.size() <= options_.max_header_bytes) return true;
      Refuse(*c, 431, "request line and headers exceed " +
                          std::to_string(options_.max_header_bytes) + " bytes");
      return true;
    }
    RequestHead h = ParseHead(std::string_view(c->in).substr(0, end));
    c->in.erase(0, end + sep);
    if (h.error != 0) {
      Refuse(*c, h.error, "malformed request");
    } else if (h.has_body) {
      Refuse(*c, 413, "a request body is never accepted here");
    } else if (h.method != "GET" && h.method != "HEAD") {
      Refuse(*c, 405, "method not allowed; use GET or HEAD");
    } else if (h.target.empty() || h.target.front() != '/') {
      Refuse(*c, 400, "the request target must be a path");
    } else {
      const size_t question = h.target.find('?');
      std::string path = h.target.substr(0, question);
      std::string query = question == std::string::npos ? "" : h.target.substr(question + 1);
      if (!options_.auth_token.empty() && !options_.open_paths.count(path) &&
          !BearerMatches(h.authorization, options_.auth_token)) {
        Refuse(*c, 401, "this path needs Authorization: Bearer <token>");
        return true;
      }
      Dispatch(std::move(c), {h.method, std::move(path), std::move(query)}, h.keep_alive);
      return false;
    }
    return true;
  }

  // Answers and closes: shut for writing, then discard what still arrives for a second,
  // so that the client reads the answer instead of a reset.
  void Refuse(Conn& c, int code, const std::string& message) {
    std::string out = Serialize(ErrorResponse(code, message), true, false);
    WriteAll(c.fd, out, Steady::now() + std::chrono::milliseconds(100));
    ::shutdown(c.fd, SHUT_WR);
    c.state = Conn::State::kDiscard;
    c.in.clear();
    c.in.shrink_to_fit();
    c.deadline = Steady::now() + std::chrono::seconds(1);
  }

  void Dispatch(std::unique_ptr<Conn> c, HttpRequest request, bool keep_alive) {
    in_flight_.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back({std::move(c), std::move(request), keep_alive});
    }
    cv_.notify_one();
  }

  void TakeReturned() {
    std::vector<std::unique_ptr<Conn>> back;
    {
      std::lock_guard<std::mutex> lock(mu_);
      back.swap(returned_);
    }
    auto now = Steady::now();
    for (auto& c : back) {
      in_flight_.fetch_sub(1);
      c->waiting_since = now;
      if (c->in.empty()) {
        c->state = Conn::State::kIdle;
        c->deadline = now + options_.idle_timeout;
      } else {
        c->state = Conn::State::kRequest;
        c->deadline = now + options_.header_timeout;
        if (!TryRequest(c)) continue;
      }
      conns_.push_back(std::move(c));
    }
  }

  void AcceptAll() {
    while (true) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      if (static_cast<int>(conns_.size()) + in_flight_.load() >= options_.max_connections) {
        // Full: the connection that has waited longest for its request makes room. A probe
        // sends its request at once and is answered before it could be the oldest.
        auto oldest = std::min_element(conns_.begin(), conns_.end(), [](auto& a, auto& b) {
          return a->waiting_since < b->waiting_since;
        });
        if (oldest == conns_.end()) continue;  // all busy in handlers: c closes
        conns_.erase(oldest);
      }
      c->waiting_since = Steady::now();
      c->deadline = c->waiting_since + options_.header_timeout;
      conns_.push_back(std::move(c));
    }
  }

  void Work() {
    while (true) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      HttpResponse r;
      try {
        r = handler_(job.request);
      } catch (const std::exception& e) {
        r = ErrorResponse(500, std::string("internal error: ") + e.what());
      }
      bool ok = WriteAll(job.conn->fd, Serialize(r, job.request.method != "HEAD", job.keep_alive),
                         Steady::now() + options_.header_timeout);
      if (!ok || !job.keep_alive) {
        job.conn.reset();
        in_flight_.fetch_sub(1);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        returned_.push_back(std::move(job.conn));
      }
      Wake();
    }
  }

  const HttpServerOptions options_;
  const Handler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::thread loop_;
  std::vector<std::thread> workers_;
  std::vector<std::unique_ptr<Conn>> conns_;  // the loop thread's alone
  std::atomic<int> in_flight_{0};             // handed to workers, not yet back or closed
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::vector<std::unique_ptr<Conn>> returned_;  // kept alive, for the loop to take back
  bool stopping_ = false;
};

}  // namespace http_server_impl

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[') h = h.substr(1, h.size() - 2);
  http_server_impl::AddrInfoList list;
  if (http_server_impl::Resolve(h, "0", list) != 0) return false;
  for (addrinfo* a = list.head; a != nullptr; a = a->ai_next) {
    if (!http_server_impl::IsLoopback(a->ai_addr)) return false;
  }
  return list.head != nullptr;
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                        Handler handler) {
  std::string host, port;
  LK_RETURN_IF_ERROR(http_server_impl::SplitAddr(options.addr, host, port));
  http_server_impl::AddrInfoList list;
  if (int rc = http_server_impl::Resolve(host, port, list); rc != 0 || list.head == nullptr) {
    return Status::InvalidArgument("status server: bad address '" + options.addr +
                                   "': " + gai_strerror(rc));
  }
  if (options.auth_token.empty() && !options.insecure && !IsLoopbackHost(host)) {
    return Status::FailedPrecondition(
        "status server: " + options.addr +
        " is not a loopback address, and /status, /doctor and /metrics name queues, hosts "
        "and pids: give --auth-token-file FILE (clients then send Authorization: Bearer "
        "TOKEN; /healthz and /readyz stay open for probes), or --insecure when a firewall "
        "or network policy already decides who connects");
  }
  auto server = std::make_unique<http_server_impl::PollHttpServer>(options, std::move(handler));
  LK_RETURN_IF_ERROR(server->Listen(*list.head));
  return std::unique_ptr<HttpServer>(std::move(server));
}

StatusOr<std::string> ReadAuthTokenFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::InvalidArgument("--auth-token-file " + path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::InvalidArgument("--auth-token-file " + path +
                                   " is readable by group or others (mode " + mode +
                                   "): chmod 600 " + path);
  }
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Status::InvalidArgument("--auth-token-file " + path + ": cannot read, or empty");
  }
  std::string token(http_server_impl::Trim(line));
  if (token.empty()) return Status::InvalidArgument("--auth-token-file " + path + ": empty token");
  for (char ch : token) {
    if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f) {
      return Status::InvalidArgument("--auth-token-file " + path +
                                     ": the token must not contain spaces or control characters");
    }
  }
  return token;
}

}  // namespace lk
