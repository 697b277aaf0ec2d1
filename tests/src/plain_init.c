/* A stand-in for an initramfs that is not pyre's (a distro's, other tooling's), for the
 * fail-closed readiness scenarios of tests/tests/boot.rs: load the modules listed in
 * /etc/pyre/modules.load, mount root= from the kernel command line as erofs read-only with
 * no dm-verity and no check at all, and exec /sbin/init in it. Built by the harness with
 * `cc -static` (tests/src/plain.rs); never part of an image. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("plain-init: ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

static void fail(const char *what) {
  say("FAILED: %s: %m; powering off", what);
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause();
}

int main(int argc, char **argv) {
  char cmdline[4096] = "", root[256] = "", line[512];
  (void)argc;
  if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0) fail("mounting /dev");
  if (mount("proc", "/proc", "proc", 0, NULL) != 0) fail("mounting /proc");
  FILE *f = fopen("/proc/cmdline", "r");
  if (!f || !fgets(cmdline, sizeof cmdline, f)) fail("reading /proc/cmdline");
  fclose(f);
  for (char *w = strtok(cmdline, " \n"); w; w = strtok(NULL, " \n"))
    if (strncmp(w, "root=", 5) == 0) snprintf(root, sizeof root, "%s", w + 5);
  if (!root[0]) fail("no root= on the kernel command line");

  int loaded = 0;
  f = fopen("/etc/pyre/modules.load", "r");
  if (!f) fail("opening /etc/pyre/modules.load");
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0] || line[0] == '#') continue;
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && syscall(SYS_finit_module, fd, "", 0) == 0) loaded++;
    if (fd >= 0) close(fd);
  }
  fclose(f);

  struct stat st;
  for (int i = 0; stat(root, &st) != 0; i++) {
    if (i == 3000) fail("waiting 30 s for the root device");
    usleep(10000);
  }
  if (mount(root, "/sysroot", "erofs", MS_RDONLY, NULL) != 0) fail("mounting the root");
  /* What any initramfs for a read-only root does: /run, /tmp in RAM, /var as an overlay. */
  if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) fail("mounting /run");
  if (mkdir("/run/plain-var", 0755) != 0 || mkdir("/run/plain-var/upper", 0755) != 0 ||
      mkdir("/run/plain-var/work", 0755) != 0)
    fail("creating /run/plain-var");
  if (mount("overlay", "/sysroot/var", "overlay", 0,
            "lowerdir=/sysroot/var,upperdir=/run/plain-var/upper,workdir=/run/plain-var/work") != 0)
    fail("mounting the /var overlay");
  if (mount("tmpfs", "/sysroot/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
    fail("mounting /tmp");
  say("%d modules, %s mounted as erofs read-only, not verified; exec /sbin/init", loaded, root);
  if (umount("/proc") != 0) fail("unmounting /proc");
  if (mount("/dev", "/sysroot/dev", NULL, MS_MOVE, NULL) != 0) fail("moving /dev");
  if (mount("/run", "/sysroot/run", NULL, MS_MOVE, NULL) != 0) fail("moving /run");
  if (chdir("/sysroot") != 0) fail("chdir /sysroot");
  if (mount(".", "/", NULL, MS_MOVE, NULL) != 0) fail("moving the root onto /");
  if (chroot(".") != 0 || chdir("/") != 0) fail("chroot");
  argv[0] = "/sbin/init";
  execv("/sbin/init", argv);
  fail("exec /sbin/init");
  return 1;
}
