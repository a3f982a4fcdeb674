#include "guest/init/boot.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/random.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <linux/fs.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "guest/init/log.h"

namespace zwrm::guest {

namespace {

constexpr const char* kLowerDir = "/lower";
constexpr const char* kOverlayDir = "/rw";
constexpr const char* kNewRoot = "/newroot";

Result<std::string> read_small_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("cannot open " + path);
  char buffer[4096];
  const ssize_t count = ::read(fd.get(), buffer, sizeof buffer);
  if (count < 0) return fail_errno("cannot read " + path);
  std::string text(buffer, static_cast<std::size_t>(count));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

Status mount_one(const char* source, const char* target, const char* type, unsigned long flags,
                 const char* data = nullptr) {
  ::mkdir(target, 0755);
  if (::mount(source, target, type, flags, data) != 0) {
    return fail_errno(std::string("cannot mount ") + type + " " + source + " on " + target);
  }
  return {};
}

// Returns /dev/vdX for the virtio-blk disk whose serial is `serial`, or an
// empty string when no such disk is attached.
std::string find_disk_by_serial(const char* serial) {
  DIR* directory = ::opendir("/sys/block");
  if (directory == nullptr) return {};
  std::string found;
  while (dirent* entry = ::readdir(directory)) {
    if (std::strncmp(entry->d_name, "vd", 2) != 0) continue;
    auto value = read_small_file(std::string("/sys/block/") + entry->d_name + "/serial");
    if (value && *value == serial) {
      found = std::string("/dev/") + entry->d_name;
      break;
    }
  }
  ::closedir(directory);
  return found;
}

std::string find_control_port() {
  DIR* directory = ::opendir("/sys/class/virtio-ports");
  if (directory == nullptr) return {};
  std::string found;
  while (dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') continue;
    auto name = read_small_file(std::string("/sys/class/virtio-ports/") + entry->d_name + "/name");
    if (name && *name == kControlPortName) {
      found = std::string("/dev/") + entry->d_name;
      break;
    }
  }
  ::closedir(directory);
  return found;
}

Status bring_up_loopback() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return fail_errno("cannot create a socket to configure lo");
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &request) != 0) return fail_errno("cannot read flags of lo");
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &request) != 0) return fail_errno("cannot bring lo up");
  return {};
}

Status add_entropy(const protocol::Bytes& seed) {
  if (seed.empty()) return {};
  UniqueFd random(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!random) return fail_errno("cannot open /dev/urandom");
  std::vector<std::uint8_t> buffer(sizeof(rand_pool_info) + seed.size());
  auto* info = reinterpret_cast<rand_pool_info*>(buffer.data());
  info->entropy_count = static_cast<int>(seed.size() * 8);
  info->buf_size = static_cast<int>(seed.size());
  std::memcpy(info->buf, seed.data(), seed.size());
  if (::ioctl(random.get(), RNDADDENTROPY, info) != 0) return fail_errno("cannot add entropy");
  return {};
}

// Makes the agent's home directory persistent: /workspace/.home, created on
// first use, bind-mounted on /home/agent. The volume is guest-writable, so
// the directory is opened without following symlinks before it is used.
Status mount_agent_home(const std::string& root) {
  const std::string stored = root + "/workspace/.home";
  if (::mkdir(stored.c_str(), 0700) == 0) {
    if (::chown(stored.c_str(), kAgentUid, kAgentGid) != 0) return fail_errno("cannot chown " + stored);
  } else if (errno != EEXIST) {
    return fail_errno("cannot create " + stored);
  }
  UniqueFd home(::open(stored.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
  if (!home) return fail_errno("cannot open " + stored + " (it must be a directory, not a symlink)");

  const std::string target = root + "/home/agent";
  ::mkdir((root + "/home").c_str(), 0755);
  ::mkdir(target.c_str(), 0755);
  const std::string source = "/proc/self/fd/" + std::to_string(home.get());
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return fail_errno("cannot bind " + stored + " on /home/agent");
  }
  return {};
}

// The host grows a volume by making its image file larger; the file system
// follows here, online, so the host never touches what the guest wrote.
void grow_workspace_file_system(const std::string& disk, const std::string& mount_point) {
  constexpr unsigned long kExt4ResizeFs = _IOW('f', 16, std::uint64_t);  // EXT4_IOC_RESIZE_FS, fs/ext4/ext4.h
  UniqueFd device(::open(disk.c_str(), O_RDONLY | O_CLOEXEC));
  std::uint64_t device_bytes = 0;
  if (!device || ::ioctl(device.get(), BLKGETSIZE64, &device_bytes) != 0) return;
  struct statfs info {};
  if (::statfs(mount_point.c_str(), &info) != 0 || info.f_bsize <= 0) return;
  std::uint64_t blocks = device_bytes / static_cast<std::uint64_t>(info.f_bsize);
  UniqueFd directory(::open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory && ::ioctl(directory.get(), kExt4ResizeFs, &blocks) != 0 && errno != EINVAL) {
    log_line("cannot grow /workspace to %llu blocks: errno %d", static_cast<unsigned long long>(blocks), errno);
  }
}

Status mount_workspace(const std::string& root) {
  const std::string disk = find_disk_by_serial(kWorkspaceSerial);
  if (disk.empty()) return {};
  const std::string target = root + "/workspace";
  ::mkdir(target.c_str(), 0755);
  if (::mount(disk.c_str(), target.c_str(), "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, nullptr) != 0) {
    return fail_errno("cannot mount the project volume (" + disk + ", ext4) on /workspace");
  }
  grow_workspace_file_system(disk, target);
  return mount_agent_home(root);
}

Status mount_overlay_root() {
  const std::string disk = find_disk_by_serial(kRootSerial);
  if (disk.empty()) return fail("no template disk attached (virtio-blk serial " + std::string(kRootSerial) + ")");
  // noload: the image is read-only at the block level, so its journal must
  // not be replayed.
  if (auto mounted = mount_one(disk.c_str(), kLowerDir, "ext4", MS_RDONLY | MS_NOATIME, "noload"); !mounted) {
    return fail(mounted.error().message + "; the template image may be corrupt: rebuild it with `zwrm template build NAME --force`",
                mounted.error().errno_value);
  }
  if (auto mounted = mount_one("overlay-rw", kOverlayDir, "tmpfs", MS_NOATIME, "mode=0755"); !mounted) return mounted;
  ::mkdir("/rw/upper", 0755);
  ::mkdir("/rw/work", 0755);
  return mount_one("overlay", kNewRoot, "overlay", MS_NOATIME,
                   "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work");
}

Status move_mount(const char* source, const std::string& target) {
  ::mkdir(target.c_str(), 0755);
  if (::mount(source, target.c_str(), nullptr, MS_MOVE, nullptr) != 0) {
    return fail_errno(std::string("cannot move ") + source + " to " + target);
  }
  return {};
}

Status switch_root() {
  const std::string root = kNewRoot;
  for (const char* mount_point : {"/dev", "/proc", "/sys"}) {
    if (auto moved = move_mount(mount_point, root + mount_point); !moved) return moved;
  }
  if (auto mounted = mount_one("devpts", (root + "/dev/pts").c_str(), "devpts", MS_NOSUID | MS_NOEXEC,
                               "mode=0620,ptmxmode=0666,gid=5");
      !mounted) {
    return mounted;
  }
  if (auto mounted = mount_one("shm", (root + "/dev/shm").c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
      !mounted) {
    return mounted;
  }
  // The initramfs stays underneath the new root; dropping the init binary's
  // entry frees its memory (the running image stays mapped).
  ::unlink("/init");
  if (::chdir(kNewRoot) != 0) return fail_errno("cannot enter the new root");
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return fail_errno("cannot move the new root to /");
  if (::chroot(".") != 0) return fail_errno("cannot chroot into the new root");
  if (::chdir("/") != 0) return fail_errno("cannot enter /");
  return {};
}

}  // namespace

Status mount_early_file_systems() {
  if (auto mounted = mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"); !mounted) return mounted;
  if (auto mounted = mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC); !mounted) return mounted;
  return mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

bool kernel_cmdline_has(const char* word) {
  auto cmdline = read_small_file("/proc/cmdline");
  if (!cmdline) return false;
  const std::string padded = " " + *cmdline + " ";
  return padded.find(std::string(" ") + word + " ") != std::string::npos;
}

Result<UniqueFd> open_control_port() {
  // Virtio devices are probed during boot, but give a slow (emulated) guest
  // up to 5 s for the port's device node to appear.
  for (int attempt = 0; attempt < 500; ++attempt) {
    const std::string port = find_control_port();
    if (!port.empty()) {
      UniqueFd fd(::open(port.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK));
      if (fd) return fd;
      if (errno != ENOENT) return fail_errno("cannot open control port " + port);
    }
    ::usleep(10'000);
  }
  return fail(std::string("no virtio-serial port named ") + kControlPortName + " appeared");
}

Status apply_setup(const protocol::Setup& setup) {
  timespec now{};
  now.tv_sec = static_cast<time_t>(setup.realtime_ns / 1'000'000'000);
  now.tv_nsec = static_cast<long>(setup.realtime_ns % 1'000'000'000);
  if (::clock_settime(CLOCK_REALTIME, &now) != 0) return fail_errno("cannot set the clock");
  if (auto added = add_entropy(setup.entropy); !added) return added;
  if (::sethostname(setup.hostname.data(), setup.hostname.size()) != 0) return fail_errno("cannot set the hostname");
  return bring_up_loopback();
}

Status mount_root_and_switch() {
  if (auto mounted = mount_overlay_root(); !mounted) return mounted;
  if (auto mounted = mount_workspace(kNewRoot); !mounted) return mounted;
  return switch_root();
}

}  // namespace zwrm::guest
