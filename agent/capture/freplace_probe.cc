#include "capture/freplace_probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"
#include "capture/privileges.h"

namespace shadowtap::capture {
namespace {

FreplaceProbe failed(int err, std::string stage, std::string detail) {
  FreplaceProbe p;
  p.error = err < 0 ? err : -err;
  p.stage = std::move(stage);
  p.detail = std::move(detail);
  return p;
}

}  // namespace

FreplaceProbe probeFreplace() {
  // BTF for `int f(struct xdp_md *ctx)`, global linkage: the shape of the
  // dispatcher's stubs. An empty xdp_md is enough, the kernel matches ctx
  // structs by name.
  btf* types = btf__new_empty();
  if (!types) {
    return failed(-errno, "setup", std::string("cannot build BTF: ") + std::strerror(errno));
  }
  const int intId = btf__add_int(types, "int", 4, BTF_INT_SIGNED);
  const int ctxId = btf__add_struct(types, "xdp_md", 0);
  const int ptrId = btf__add_ptr(types, ctxId);
  const int protoId = btf__add_func_proto(types, intId);
  int err = btf__add_func_param(types, "ctx", ptrId);
  const int targetId = btf__add_func(types, "st_probe_target", BTF_FUNC_GLOBAL, protoId);
  const int extId = btf__add_func(types, "st_probe_ext", BTF_FUNC_GLOBAL, protoId);
  if (intId < 0 || ctxId < 0 || ptrId < 0 || protoId < 0 || err < 0 || targetId < 0 || extId < 0) {
    btf__free(types);
    return failed(-EINVAL, "setup", "cannot build BTF for the freplace probe");
  }
  err = btf__load_into_kernel(types);
  if (err) {
    const int e = -errno;
    btf__free(types);
    return failed(e, "setup", std::string("the kernel refused BTF: ") + std::strerror(-e));
  }
  const int btfFd = btf__fd(types);

  const bpf_insn passInsns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 2 /* XDP_PASS */},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  bpf_func_info targetInfo{0, static_cast<__u32>(targetId)};
  LIBBPF_OPTS(bpf_prog_load_opts, targetOpts, .prog_btf_fd = static_cast<__u32>(btfFd),
              .func_info = &targetInfo, .func_info_cnt = 1, .func_info_rec_size = sizeof(targetInfo));
  base::Fd target{bpf_prog_load(BPF_PROG_TYPE_XDP, "st_probe_target", "GPL", passInsns, 2, &targetOpts)};
  if (target.get() < 0) {
    const int e = -errno;
    btf__free(types);
    return failed(e, "setup", std::string("cannot load a plain XDP program: ") + std::strerror(-e));
  }

  char log[1024] = "";
  bpf_func_info extInfo{0, static_cast<__u32>(extId)};
  LIBBPF_OPTS(bpf_prog_load_opts, extOpts, .prog_btf_fd = static_cast<__u32>(btfFd),
              .attach_btf_id = static_cast<__u32>(targetId), .attach_prog_fd = static_cast<__u32>(target.get()),
              .func_info = &extInfo, .func_info_cnt = 1, .func_info_rec_size = sizeof(extInfo), .log_level = 1,
              .log_size = sizeof(log), .log_buf = log);
  base::Fd ext{bpf_prog_load(BPF_PROG_TYPE_EXT, "st_probe_ext", "GPL", passInsns, 2, &extOpts)};
  const int loadErrno = errno;
  btf__free(types);
  if (ext.get() < 0) {
    std::string d = std::string("the kernel refuses to load a freplace (BPF_PROG_TYPE_EXT) program: ") +
                    std::strerror(loadErrno);
    if (loadErrno == EPERM) {
      d += missingPrivileges().empty()
               ? " although this process has CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; the kernel does not allow "
                 "BPF trampolines (freplace, fentry/fexit, LSM programs), e.g. a hardened or sandboxed build"
               : " (" + missingPrivileges() + ")";
    } else if (log[0] != '\0') {
      d += std::string(" (verifier: ") + log + ")";
    }
    FreplaceProbe p = failed(-loadErrno, "load", d);
    p.refusedByKernel = loadErrno == EPERM && missingPrivileges().empty();
    return p;
  }
  LIBBPF_OPTS(bpf_link_create_opts, linkOpts, .target_btf_id = static_cast<__u32>(targetId));
  base::Fd link{bpf_link_create(ext.get(), target.get(), static_cast<bpf_attach_type>(0), &linkOpts)};
  if (link.get() < 0) {
    const int e = errno;
    return failed(-e, "attach",
                  std::string("the kernel refuses to attach a freplace program to an XDP program: ") +
                      std::strerror(e));
  }
  return FreplaceProbe{};
}

}  // namespace shadowtap::capture
