// KubeClient over cpprestsdk's http_client (Debian 12: cpprestsdk 2.10.18 on boost::asio
// 1.74 and OpenSSL 3). One file (about 520 lines) because it is one adapter: every verb
// goes through the same request, retry and error-mapping path below. cpprestsdk throws (http_exception for connection errors and
// timeouts, task_canceled): everything is caught here and becomes a Status.
//
// TLS goes through http_client_config::set_ssl_context_callback, which cpprestsdk calls on
// the boost::asio::ssl::context of each new connection, after its own
// set_default_verify_paths(): we add the kubeconfig's CA and client certificate there.
// Server verification itself stays cpprestsdk's (verify_peer with RFC 2818 host names,
// IP SANs included), or is off with insecure-skip-tls-verify.
//
// Timeouts: cpprestsdk's timeout restarts at every read and write, so it bounds silence,
// not a whole request; that suits a watch (bounded by the server's timeoutSeconds) as well.
#include <utility>  // before pplx: boost/asio/awaitable.hpp needs std::exchange

#include <cpprest/http_client.h>
#include <cpprest/containerstream.h>

#include <boost/asio/ssl.hpp>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "controller/kube/kube_client.h"

namespace lk::kube {

namespace {

namespace http = web::http;
namespace httpc = web::http::client;

std::string PercentEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// "?a=b&c=d" from pairs whose value is not empty.
std::string Query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    q += (q.empty() ? "?" : "&") + k + "=" + PercentEncode(v);
  }
  return q;
}

// The bearer token: fixed, or a file re-read whenever its modification time or size
// changes (kubelet rewrites projected service-account tokens before they expire). A token
// given inline wins over a file, as in client-go.
class BearerToken {
 public:
  BearerToken(std::string token, std::string file)
      : token_(std::move(token)), file_(token_.empty() ? std::move(file) : std::string()) {}

  std::string Current() {
    if (file_.empty()) return token_;
    std::lock_guard<std::mutex> lock(mu_);
    struct stat st {};
    if (::stat(file_.c_str(), &st) == 0 &&
        (st.st_mtim.tv_sec != mtime_.tv_sec || st.st_mtim.tv_nsec != mtime_.tv_nsec ||
         st.st_size != size_)) {
      std::ifstream in(file_);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string t = ss.str();
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      token_ = t;
      mtime_ = st.st_mtim;
      size_ = st.st_size;
    }
    return token_;
  }

 private:
  std::mutex mu_;
  std::string token_;
  const std::string file_;
  timespec mtime_{};
  off_t size_ = -1;
};

// The CA and client certificate applied to each new TLS connection.
struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;

  void Apply(boost::asio::ssl::context& ctx) const {
    if (!ca_pem.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca_pem));
    if (!cert_pem.empty()) {
      ctx.use_certificate_chain(boost::asio::buffer(cert_pem));
      ctx.use_private_key(boost::asio::buffer(key_pem), boost::asio::ssl::context::pem);
    }
  }
};

std::string Seconds(Millis d) {
  std::ostringstream out;
  out << d.count() / 1000.0 << "s";
  return out.str();
}

// The message of an API Status body (or the body itself, cut short), plus the causes of
// an Invalid one that the message does not already name.
std::string StatusMessage(const std::string& body, int code, const std::string& reason_phrase) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    std::string text = body.substr(0, 300);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return "HTTP " + std::to_string(code) + " " + reason_phrase + (text.empty() ? "" : ": " + text);
  }
  std::string message = j.value("message", std::string());
  if (message.empty()) message = "HTTP " + std::to_string(code) + " " + j.value("reason", reason_phrase);
  if (j.contains("details") && j["details"].is_object() && j["details"].contains("causes") &&
      j["details"]["causes"].is_array()) {
    std::string extra;
    for (const auto& c : j["details"]["causes"]) {
      std::string field = c.value("field", std::string());
      std::string m = c.value("message", std::string());
      if (m.empty() || message.find(m) != std::string::npos) continue;
      extra += (extra.empty() ? "" : "; ") + (field.empty() ? m : field + ": " + m);
    }
    if (!extra.empty()) message += " (" + extra + ")";
  }
  return message;
}

Status MapHttpError(int code, const std::string& what, const std::string& message) {
  std::string m = what + ": " + message;
  switch (code) {
    case 404: return Status::NotFound(m);
    case 409: return Status::Conflict(m);
    case 410: return Status::Gone(m);
    case 400:
    case 422: return Status::InvalidArgument(m);
    case 401:
      return Status::FailedPrecondition(
          m + " (the API server did not accept our credentials: check the kubeconfig user or "
              "the ServiceAccount token)");
    case 403:
      return Status::FailedPrecondition(
          m + " (forbidden: check the ServiceAccount's RBAC: its Role or ClusterRole must "
              "allow this verb on this resource)");
    default:
      if (code == 429 || code >= 500) return Status::Unavailable(m);
      return Status::Internal(m);
  }
}

class HttpKubeClient final : public KubeClient {
 public:
  HttpKubeClient(KubeConfig config, KubeClientOptions options)
      : config_(std::move(config)),
        options_(std::move(options)),
        token_(config_.token, config_.token_file),
        tls_(std::make_shared<TlsMaterial>(
            TlsMaterial{config_.ca_pem, config_.client_cert_pem, config_.client_key_pem})),
        client_(std::make_unique<httpc::http_client>(config_.server, ClientConfig(options_.timeout))) {}

  std::string server() const override { return config_.server; }

  StatusOr<Json> Get(const ResourceRef& ref) override {
    return Call(http::methods::GET, "GET", ref, ref.Path(), nullptr, "");
  }

  StatusOr<ObjectList> List(const ResourceRef& collection, const ListOptions& options) override {
    ObjectList out;
    std::string cont;
    // Follows `continue` tokens: the server serves every page from the first one's
    // snapshot, so the items and the list's resourceVersion agree.
    do {
      std::string query = Query({{"labelSelector", options.label_selector},
                                 {"fieldSelector", options.field_selector},
                                 {"limit", options.page_size > 0 ? std::to_string(options.page_size) : ""},
                                 {"continue", cont}});
      auto page = Call(http::methods::GET, "LIST", collection, collection.Path() + query, nullptr, "");
      if (!page.ok()) return page.status();
      const Json meta = page->contains("metadata") && (*page)["metadata"].is_object() ? (*page)["metadata"] : Json::object();
      if (out.resource_version.empty()) out.resource_version = meta.value("resourceVersion", "");
      cont = meta.value("continue", "");
      if (page->contains("items") && (*page)["items"].is_array()) {
        // A list's items carry no kind/apiVersion; add them so objects look as Get returns.
        std::string kind = page->value("kind", "");
        if (kind.size() > 4 && kind.compare(kind.size() - 4, 4, "List") == 0) kind.resize(kind.size() - 4);
        for (auto& item : (*page)["items"]) {
          if (!item.contains("kind") && !kind.empty()) item["kind"] = kind;
          if (!item.contains("apiVersion") && page->contains("apiVersion")) item["apiVersion"] = (*page)["apiVersion"];
          out.items.push_back(std::move(item));
        }
      }
    } while (!cont.empty());
    return out;
  }

  StatusOr<Json> Create(const ResourceRef& ref, const Json& object) override {
    ResourceRef collection = ref.Named("");
    collection.subresource.clear();
    std::string query = Query({{"fieldManager", options_.field_manager}});
    ResourceRef shown = ref.Named(object.contains("metadata") ? object["metadata"].value("name", "") : "");
    return Call(http::methods::POST, "POST", shown, collection.Path() + query, &object, "application/json");
  }

  StatusOr<Json> Update(const ResourceRef& ref, const Json& object) override {
    std::string query = Query({{"fieldManager", options_.field_manager}});
    return Call(http::methods::PUT, "PUT", ref, ref.Path() + query, &object, "application/json");
  }

  StatusOr<Json> UpdateStatus(const ResourceRef& ref, const Json& object) override {
    return Update(ref.Subresource("status"), object);
  }

  StatusOr<Json> Patch(const ResourceRef& ref, const Json& patch, const PatchOptions& options) override {
    std::string manager = options.field_manager.empty() ? options_.field_manager : options.field_manager;
    bool apply = options.type == PatchOptions::Type::kApply;
    std::string query = Query({{"fieldManager", manager}, {"force", apply && options.force ? "true" : ""}});
    return Call(http::methods::PATCH, apply ? "APPLY" : "PATCH", ref, ref.Path() + query, &patch,
                apply ? "application/apply-patch+yaml" : "application/merge-patch+json");
  }

  Status Delete(const ResourceRef& ref, const DeleteOptions& options) override {
    Json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
    if (!options.propagation_policy.empty()) body["propagationPolicy"] = options.propagation_policy;
    if (!options.precondition_uid.empty()) body["preconditions"]["uid"] = options.precondition_uid;
    if (!options.precondition_resource_version.empty()) {
      body["preconditions"]["resourceVersion"] = options.precondition_resource_version;
    }
    auto r = Call(http::methods::DEL, "DELETE", ref, ref.Path(), &body, "application/json");
    return r.ok() ? Status::OK() : r.status();
  }

  Status Watch(const ResourceRef& collection, const WatchOptions& options,
               const std::function<bool(WatchEvent&&)>& on_event, Cancellation& cancel) override {
    const std::string what = "WATCH " + collection.Describe();
    std::string query = Query({{"watch", "true"},
                               {"resourceVersion", options.resource_version},
                               {"labelSelector", options.label_selector},
                               {"fieldSelector", options.field_selector},
                               {"allowWatchBookmarks", options.allow_bookmarks ? "true" : ""},
                               {"timeoutSeconds", std::to_string(options.timeout_seconds)}});
    // Its own http_client: a read timeout a little past the server's timeoutSeconds.
    httpc::http_client client(config_.server,
                              ClientConfig(Millis((options.timeout_seconds + 15) * 1000LL)));
    pplx::cancellation_token_source cts;
    const int id = cancel.OnCancel([&cts] { cts.cancel(); });
    struct Unregister {
      Cancellation& c;
      int id;
      ~Unregister() { c.Remove(id); }
    } unregister{cancel, id};
    if (cancel.cancelled()) return Status::OK();

    try {
      http::http_response response =
          client.request(Request(http::methods::GET, collection.Path() + query, nullptr, ""), cts.get_token()).get();
      if (response.status_code() != http::status_codes::OK) {
        std::string body = response.extract_utf8string(true).get();
        return MapHttpError(response.status_code(), what,
                            StatusMessage(body, response.status_code(), response.reason_phrase()));
      }
      concurrency::streams::istream stream = response.body();
      while (true) {
        concurrency::streams::container_buffer<std::string> line;
        size_t n = stream.read_line(line).get();
        if (n == 0) {
          if (stream.is_eof()) return Status::OK();  // the server ended the stream
          continue;
        }
        Json ev = Json::parse(line.collection(), nullptr, false);
        if (ev.is_discarded() || !ev.is_object()) {
          return Status::Internal(what + ": a watch event that is not JSON: " + line.collection().substr(0, 200));
        }
        std::string type = ev.value("type", "");
        WatchEvent event{WatchEvent::Type::kAdded, std::move(ev["object"])};
        if (type == "ERROR") {
          int code = event.object.value("code", 500);
          return MapHttpError(code, what, StatusMessage(event.object.dump(), code, "watch error"));
        }
        if (type == "ADDED") event.type = WatchEvent::Type::kAdded;
        else if (type == "MODIFIED") event.type = WatchEvent::Type::kModified;
        else if (type == "DELETED") event.type = WatchEvent::Type::kDeleted;
        else if (type == "BOOKMARK") event.type = WatchEvent::Type::kBookmark;
        else return Status::Internal(what + ": unknown watch event type \"" + type + "\"");
        if (!on_event(std::move(event))) return Status::OK();
      }
    } catch (const std::exception& e) {
      if (cancel.cancelled()) return Status::OK();
      return Unreachable(what, e);
    }
  }

 private:
  httpc::http_client_config ClientConfig(Millis timeout) const {
    httpc::http_client_config cfg;
    cfg.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
    if (config_.server.rfind("https://", 0) == 0) {
      cfg.set_validate_certificates(!config_.insecure_skip_tls_verify);
      auto tls = tls_;
      cfg.set_ssl_context_callback([tls](boost::asio::ssl::context& ctx) { tls->Apply(ctx); });
    }
    return cfg;
  }

  http::http_request Request(const http::method& method, const std::string& path_query,
                             const Json* body, const std::string& content_type) {
    http::http_request req(method);
    req.set_request_uri(path_query);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", options_.user_agent);
    if (std::string t = token_.Current(); !t.empty()) req.headers().add("Authorization", "Bearer " + t);
    if (body != nullptr) req.set_body(body->dump(), content_type);
    return req;
  }

  Status Unreachable(const std::string& what, const std::exception& e) const {
    std::string detail = e.what();
    if (dynamic_cast<const pplx::task_canceled*>(&e) != nullptr) detail = "cancelled";
    return Status::Unavailable(what + ": cannot reach the API server " + config_.server + ": " + detail);
  }

  StatusOr<Json> Call(const http::method& method, const std::string& verb, const ResourceRef& ref,
                      const std::string& path_query, const Json* body, const std::string& content_type) {
    const std::string what = verb + " " + ref.Describe();
    for (int attempt = 1;; ++attempt) {
      try {
        http::http_response response = client_->request(Request(method, path_query, body, content_type)).get();
        std::string text = response.extract_utf8string(true).get();
        const int code = response.status_code();
        if (code < 200 || code >= 300) {
          return MapHttpError(code, what, StatusMessage(text, code, response.reason_phrase()));
        }
        Json j = Json::parse(text, nullptr, false);
        if (j.is_discarded()) {
          return Status::Internal(what + ": the API server answered something that is not JSON: " +
                                  text.substr(0, 200));
        }
        return j;
      } catch (const http::http_exception& e) {
        // cpprestsdk reports its own timeout as an http_exception with errc::timed_out.
        if (e.error_code() == std::errc::timed_out) {
          return Status::Unavailable(what + ": the API server " + config_.server +
                                     " did not answer within " + Seconds(options_.timeout));
        }
        // cpprestsdk reuses pooled keep-alive connections and does not notice that the
        // server closed one (it restarted, or its idle timeout passed) until a request on it
        // fails. Try once more on a fresh connection: always when the request could not
        // even be written (the server cannot have acted on it), and for every verb but
        // POST otherwise (they are idempotent here: conditional PUTs, merge and apply
        // patches, deletes); a POST's second try could only answer AlreadyExists.
        const bool unsent = std::string(e.what()).find("Failed to write") != std::string::npos;
        if (attempt == 1 && (unsent || verb != "POST")) continue;
        return Unreachable(what, e);
      } catch (const std::exception& e) {
        return Unreachable(what, e);
      }
    }
  }

  const KubeConfig config_;
  const KubeClientOptions options_;
  BearerToken token_;
  std::shared_ptr<const TlsMaterial> tls_;
  std::unique_ptr<httpc::http_client> client_;
};

}  // namespace

StatusOr<std::unique_ptr<KubeClient>> NewKubeClient(const KubeConfig& config, const KubeClientOptions& options) {
  const std::string& s = config.server;
  if (std::string problem = ServerUrlProblem(s); !problem.empty()) {
    return Status::InvalidArgument(config.origin + ": server " + problem);
  }
  // Try the TLS material once now, so that a bad certificate is an error here and not at
  // every connection (where cpprestsdk would report it as a failed request).
  if (s.rfind("https://", 0) == 0) {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::sslv23);
    boost::system::error_code ec;
    if (!config.ca_pem.empty() && ctx.add_certificate_authority(boost::asio::buffer(config.ca_pem), ec)) {
      return Status::InvalidArgument(config.origin + ": the certificate authority is not a PEM certificate: " + ec.message());
    }
    if (!config.client_cert_pem.empty()) {
      if (ctx.use_certificate_chain(boost::asio::buffer(config.client_cert_pem), ec)) {
        return Status::InvalidArgument(config.origin + ": the client certificate is not a PEM certificate: " + ec.message());
      }
      if (ctx.use_private_key(boost::asio::buffer(config.client_key_pem), boost::asio::ssl::context::pem, ec)) {
        return Status::InvalidArgument(config.origin + ": the client key is not a PEM private key matching the certificate: " + ec.message());
      }
    }
  }
  try {
    return std::unique_ptr<KubeClient>(std::make_unique<HttpKubeClient>(config, options));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(config.origin + ": server \"" + s + "\": " + e.what());
  }
}

// ResourceRef, Cancellation and the conflict-retry helpers: the parts of kube_client.h
// that are not HTTP.

std::string ResourceRef::Path() const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (!ns.empty()) p += "/namespaces/" + ns;
  p += "/" + resource;
  if (!name.empty()) p += "/" + name;
  if (!subresource.empty()) p += "/" + subresource;
  return p;
}

std::string ResourceRef::Describe() const {
  std::string d = resource + (group.empty() ? "" : "." + group);
  if (!subresource.empty()) d += "/" + subresource;
  if (!name.empty()) d += " " + (ns.empty() ? name : ns + "/" + name);
  else if (!ns.empty()) d += " in namespace " + ns;
  return d;
}

ResourceRef ResourceRef::Named(std::string n) const {
  ResourceRef r = *this;
  r.name = std::move(n);
  return r;
}

ResourceRef ResourceRef::InNamespace(std::string n) const {
  ResourceRef r = *this;
  r.ns = std::move(n);
  return r;
}

ResourceRef ResourceRef::Subresource(std::string s) const {
  ResourceRef r = *this;
  r.subresource = std::move(s);
  return r;
}

ResourceRef LanesRef(std::string ns) { return {"lanekeeper.dev", "v1alpha1", "lanes", std::move(ns), "", ""}; }
ResourceRef DeploymentsRef(std::string ns) { return {"apps", "v1", "deployments", std::move(ns), "", ""}; }
ResourceRef ConfigMapsRef(std::string ns) { return {"", "v1", "configmaps", std::move(ns), "", ""}; }
ResourceRef LeasesRef(std::string ns) { return {"coordination.k8s.io", "v1", "leases", std::move(ns), "", ""}; }

std::string ObjectKey(const Json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) return "";
  const Json& m = object["metadata"];
  std::string name = m.value("name", "");
  std::string ns = m.value("namespace", "");
  return ns.empty() ? name : ns + "/" + name;
}

void Cancellation::Cancel() {
  // Callbacks run under the lock, so that once Remove() has returned its callback is
  // neither running nor going to run (the caller may then destroy what it refers to).
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return;
  cancelled_ = true;
  for (auto& [id, fn] : callbacks_) fn();
  callbacks_.clear();
}

bool Cancellation::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

int Cancellation::OnCancel(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  const int id = ++next_id_;
  if (cancelled_) {
    lock.unlock();
    fn();
    return id;
  }
  callbacks_.emplace_back(id, std::move(fn));
  return id;
}

void Cancellation::Remove(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(callbacks_, [id](const auto& c) { return c.first == id; });
}

Status RetryOnConflict(const std::function<Status()>& attempt, int max_attempts) {
  thread_local std::mt19937 rng(std::random_device{}());
  Status s;
  for (int i = 0; i < max_attempts; ++i) {
    if (i > 0) {
      std::uniform_int_distribution<int> jitter(0, 1000);
      std::this_thread::sleep_for(std::chrono::microseconds(10'000 + jitter(rng)));
    }
    s = attempt();
    if (s.code() != Status::Code::kConflict) return s;
  }
  return s;
}

StatusOr<Json> GetModifyUpdate(KubeClient& client, const ResourceRef& ref,
                               const std::function<Status(Json& object)>& modify) {
  Json stored;
  Status s = RetryOnConflict([&]() -> Status {
    auto current = client.Get(ref.Subresource(""));
    if (!current.ok()) return current.status();
    LK_RETURN_IF_ERROR(modify(*current));
    auto updated = ref.subresource == "status" ? client.UpdateStatus(ref.Subresource(""), *current)
                                               : client.Update(ref.Subresource(""), *current);
    if (!updated.ok()) return updated.status();
    stored = std::move(*updated);
    return Status::OK();
  });
  if (!s.ok()) return s;
  return stored;
}

}  // namespace lk::kube
