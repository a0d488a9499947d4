#include "capture/tls_probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "capture/kernel_support.h"
#include "capture/libbpf_log.h"
#include "capture_tls.skel.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {
namespace {

std::string realPath(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

struct Probe {
  bpf_program* prog;
  const char* function;
  bool ret;
};

}  // namespace

std::string TlsProbes::defaultLibrary(std::string* error) {
  void* handle = dlopen("libssl.so.3", RTLD_LAZY | RTLD_LOCAL);
  if (!handle) {
    *error = std::string("--tls: the loader finds no libssl.so.3 (") + dlerror() + "); name one with --tls-library";
    return "";
  }
  link_map* map = nullptr;
  std::string path;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name) {
    path = realPath(map->l_name);
  }
  dlclose(handle);
  if (path.empty()) {
    *error = "--tls: cannot tell where the loader's libssl.so.3 is; name it with --tls-library";
  }
  return path;
}

std::unique_ptr<TlsProbes> TlsProbes::open(const XdpShared& shared, const std::string& library, std::string* error) {
  auto probes = std::unique_ptr<TlsProbes>(new TlsProbes());
  std::string path = library.empty() ? defaultLibrary(error) : realPath(library);
  if (path.empty()) {
    if (!library.empty()) {
      *error = "--tls-library " + library + ": " + std::strerror(errno);
    }
    return nullptr;
  }
  probes->library_ = path;
  capture_tls* skel = probes->skel_ = capture_tls__open();
  if (!skel) {
    *error = std::string("cannot open the TLS programs: ") + std::strerror(errno);
    return nullptr;
  }
  skel->rodata->st_hash_seed = shared.hashSeed;
  skel->rodata->st_workers = shared.workers;
  skel->rodata->st_wakeup_bytes = shared.wakeupBytes;
  skel->rodata->st_self_tgid = static_cast<uint32_t>(getpid());
  const std::pair<bpf_map*, int> reuse[] = {
      {skel->maps.st_rules, shared.rulesFd},   {skel->maps.st_prefix_rules, shared.prefixRulesFd},
      {skel->maps.st_events, shared.eventsFd}, {skel->maps.st_rings, shared.ringsFd},
      {skel->maps.st_counters, shared.countersFd},
  };
  for (const auto& [map, fd] : reuse) {
    if (bpf_map__reuse_fd(map, fd) != 0) {
      *error = std::string("cannot share the capture maps with the TLS programs: ") + std::strerror(errno);
      return nullptr;
    }
  }
  clearVerifierLog();
  if (const int err = capture_tls__load(skel); err != 0) {
    *error = describeLoadFailure("the TLS programs", err);
    return nullptr;
  }
  if (std::string why = probes->attach(); !why.empty()) {
    *error = why;
    return nullptr;
  }
  return probes;
}

std::string TlsProbes::attach() {
  const Probe kProbes[] = {
      {skel_->progs.st_tls_set_fd, "SSL_set_fd", false},
      {skel_->progs.st_tls_read, "SSL_read", false},
      {skel_->progs.st_tls_read_ret, "SSL_read", true},
      {skel_->progs.st_tls_read_ex, "SSL_read_ex", false},
      {skel_->progs.st_tls_read_ex_ret, "SSL_read_ex", true},
      {skel_->progs.st_tls_write, "SSL_write", false},
      {skel_->progs.st_tls_write_ret, "SSL_write", true},
      {skel_->progs.st_tls_write_ex, "SSL_write_ex", false},
      {skel_->progs.st_tls_write_ex_ret, "SSL_write_ex", true},
      {skel_->progs.st_tls_free, "SSL_free", false},
  };
  static_assert(std::size(kProbes) == kMaxLinks);
  for (const Probe& p : kProbes) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = p.ret, .func_name = p.function);
    bpf_link* link = bpf_program__attach_uprobe_opts(p.prog, -1, library_.c_str(), 0, &opts);
    if (!link) {
      const int err = errno;
      // The kernel opens uprobe perf events to CAP_SYS_ADMIN only (CAP_PERFMON is not
      // enough, unlike for the packet programs), so a container with the DaemonSet's
      // capabilities lands here.
      const bool denied = err == EACCES || err == EPERM;
      return std::string("--tls: cannot attach a ") + (p.ret ? "uretprobe" : "uprobe") + " to " + p.function +
             " in " + library_ + ": " + std::strerror(err) +
             (denied ? " (uprobes need CAP_SYS_ADMIN; CAP_PERFMON is not enough)" : " (is it OpenSSL's libssl?)");
    }
    links_[nlinks_++] = link;
  }
  return "";
}

TlsProbes::~TlsProbes() {
  for (int i = nlinks_ - 1; i >= 0; --i) {
    bpf_link__destroy(links_[i]);
  }
  if (skel_) {
    capture_tls__destroy(skel_);
  }
}

}  // namespace shadowtap::capture
