/* cpr-exec, both sides: the same process runs a new program, under a
 * guardian that brings the previous binary back unless a new tern takes
 * the guest; see cpr.h, include/tern/cprguard.h and docs/cpr.md. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tern/cprguard.h"

#include "cpr/cpr.h"
#include "cpr/cpr_internal.h"
#include "cpr/cpr_blob.h"
#include "run.h"

#define ENV_STATE "TERN_CPR_STATE"
#define ENV_GUARDIAN "TERN_CPR_GUARDIAN"
#define ENV_PREVIOUS "TERN_CPR_PREVIOUS"
#define ENV_FALLBACK "TERN_CPR_FALLBACK"
#define ENV_OLD_VM "TERN_CPR_OLD_VM"
#define ENV_OLD_MM "TERN_CPR_OLD_MM"
#define ENV_PREFIX "TERN_CPR_"
#define GUARDIAN_ANSWER_MS 2000
#define REASON_ROOM 512

extern char **environ;

/* ------------------------------------------------------------ the old process */

/* What the guardian's fallback runs with: this environment without any
 * TERN_CPR_ variable, then the state's fd and a slot for the reason. */
struct fallback_env {
	char **envp;
	char state[32];
	char reason[sizeof ENV_FALLBACK "=" + REASON_ROOM];
};

static int fallback_env_make(struct fallback_env *f, int state_fd)
{
	size_t n = 0;
	while (environ[n] != NULL)
		n++;
	f->envp = calloc(n + 3, sizeof *f->envp);
	if (f->envp == NULL)
		return -ENOMEM;
	size_t at = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
			f->envp[at++] = environ[i];
	snprintf(f->state, sizeof f->state, ENV_STATE "=%d", state_fd);
	snprintf(f->reason, sizeof f->reason, ENV_FALLBACK "=");
	f->envp[at++] = f->state;
	f->envp[at++] = f->reason;
	return 0;
}

static int write_state(int fd, const struct tern_buf *blob, struct tern_error *err)
{
	size_t done = 0;
	while (done < blob->len) {
		ssize_t n = write(fd, blob->data + done, blob->len - done);
		if (n <= 0)
			return tern_errorf(err, -errno, "writing the state: %s", strerror(errno));
		done += (size_t)n;
	}
	return 0;
}

static void forget_update_env(void)
{
	unsetenv(ENV_STATE);
	unsetenv(ENV_GUARDIAN);
	unsetenv(ENV_PREVIOUS);
	unsetenv(ENV_FALLBACK);
	unsetenv(ENV_OLD_VM);
	unsetenv(ENV_OLD_MM);
}

/* The exec failed: take the guest back from the guardian and end it.  If
 * the guardian says it is too late (x-cpr-timeout passed), it is about to
 * kill this process and resume the guest itself: wait for that. */
static void take_back(struct tern_mm_keeper *guardian, int taker_fd)
{
	int rc = tern_cpr_guard_take(taker_fd, GUARDIAN_ANSWER_MS);
	if (rc == -ECANCELED)
		for (;;)
			pause();
	tern_mm_keeper_release(guardian); /* quick: the address space is still in use */
}

static struct fallback_env fallback_env; /* the guardian reads it in place */

int cpr_exec_update(struct runner *r, const struct tern_buf *blob, uint64_t stop_ns,
		    struct tern_error *err)
{
	char *const *argv = r->mig.cpr_exec_argv;
	static char *const fallback_argv[] = { "tern", "run", NULL };
	int state_fd = memfd_create("tern-cpr-state", MFD_CLOEXEC); /* the guardian hands it on */
	if (state_fd < 0)
		return tern_errorf(err, -errno, "memfd for the state: %s", strerror(errno));
	int rc = write_state(state_fd, blob, err);
	int self_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC); /* even if replaced on disk */
	if (rc == 0 && self_fd < 0)
		rc = tern_errorf(err, -errno, "opening this tern's binary: %s", strerror(errno));
	if (rc == 0 && fallback_env_make(&fallback_env, state_fd) < 0)
		rc = tern_errorf(err, -ENOMEM, "out of memory");
	struct tern_mm_keeper guardian = { .pidfd = -1 };
	int taker_fd = -1;
	if (rc == 0) {
		const struct tern_cpr_guard_spec spec = {
			.state_fd = state_fd,
			.previous_fd = self_fd,
			.deadline_ns = stop_ns + (uint64_t)r->mig.cpr_timeout_ms * 1000000ULL,
			.timeout_ms = r->mig.cpr_timeout_ms,
			.fallback_argv = fallback_argv,
			.fallback_envp = fallback_env.envp,
			.reason_at = fallback_env.reason + strlen(ENV_FALLBACK "="),
			.reason_room = REASON_ROOM,
			.clear_cloexec = { state_fd, -1, -1, -1 },
		};
		/* Started before anything is marked to pass, so that the guardian's
		 * own fallback inherits only what the state names. */
		if ((rc = tern_cpr_guard_start(&guardian, &spec, &taker_fd)) < 0)
			rc = tern_errorf(err, rc, "cannot start the live update's guardian: %s",
					 strerror(-rc));
	}
	if (rc == 0 && (fcntl(taker_fd, F_SETFD, 0) < 0 || fcntl(guardian.pidfd, F_SETFD, 0) < 0)) {
		rc = tern_errorf(err, -errno, "passing the guardian on: %s", strerror(errno));
		take_back(&guardian, taker_fd);
	}
	if (rc == 0) {
		forget_update_env();
		cpr_set_env_fd(ENV_GUARDIAN, taker_fd);
		cpr_set_env_fd(ENV_OLD_MM, guardian.pidfd); /* the guardian keeps the address space */
		/* Closing the VM fd at exec would tear the old VM down (its memslots,
		 * thousands of ioeventfds) before the new tern runs: keep it open
		 * through exec and let the new tern close it once the guest runs. */
		int vm_fd = r->vm.kvm.vm_fd;
		if (fcntl(vm_fd, F_SETFD, 0) == 0)
			cpr_set_env_fd(ENV_OLD_VM, vm_fd);
		execv(argv[0], argv);
		rc = tern_errorf(err, -errno, "cannot run %s: %s", argv[0], strerror(errno));
		fcntl(vm_fd, F_SETFD, FD_CLOEXEC);
		forget_update_env();
		take_back(&guardian, taker_fd);
	}
	if (taker_fd >= 0)
		close(taker_fd);
	free(fallback_env.envp);
	fallback_env.envp = NULL;
	close(state_fd);
	if (self_fd >= 0)
		close(self_fd);
	return rc;
}

/* ------------------------------------------------------------ the new process */

int cpr_exec_pending(void)
{
	return getenv(ENV_GUARDIAN) != NULL || getenv(ENV_STATE) != NULL;
}

static int check_open(void *ctx, const char *name, uint32_t id, int fd)
{
	struct tern_error *err = ctx;
	if (fcntl(fd, F_GETFD) < 0)
		return tern_errorf(err, -EBADF, "kept fd %s/%u (%d) did not live through exec", name,
				   id, fd);
	return 0;
}

/* The old VM's fd, if the environment names one that is really a KVM VM. */
static int old_vm_fd(void)
{
	int fd = cpr_env_fd(ENV_OLD_VM);
	char link[64], target[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = fd >= 0 ? readlink(link, target, sizeof target - 1) : -1;
	if (n < 0)
		return -1;
	target[n] = '\0';
	return strcmp(target, "anon_inode:kvm-vm") == 0 ? fd : -1;
}

/* The state and the previous binary: from the guardian, or from the
 * environment -- the guardian's own fallback (no previous binary then), or
 * an update from a tern older than the guardian, which passes both there. */
static int find_state(struct tern_error *err)
{
	if (getenv(ENV_GUARDIAN) == NULL) {
		cpr.state_fd = cpr_env_fd(ENV_STATE);
		cpr.previous_fd = cpr_env_fd(ENV_PREVIOUS);
		return 0;
	}
	cpr.guardian_fd = cpr_env_fd(ENV_GUARDIAN);
	int rc = cpr.guardian_fd < 0 ? -EBADF
				     : tern_cpr_guard_fetch(cpr.guardian_fd, &cpr.state_fd,
							    &cpr.previous_fd, GUARDIAN_ANSWER_MS);
	if (rc < 0) {
		cpr.guardian_fd = -1; /* nothing to fall back with here: the guardian will */
		return tern_errorf(err, rc, "$%s does not reach the live update's guardian: %s",
				   ENV_GUARDIAN, strerror(-rc));
	}
	return 0;
}

int cpr_receive_exec(struct runner *r, struct tern_error *err)
{
	cpr.exec_mode = 1;
	cpr.old_vm_fd = old_vm_fd();
	/* Only our own keeper child is taken: a forged fd is left alone. */
	tern_mm_keeper_adopt(&cpr.old_mm, cpr_env_fd(ENV_OLD_MM));
	r->cpr_fallback = getenv(ENV_FALLBACK) != NULL;
	r->cpr_fallback_error = getenv(ENV_FALLBACK);
	int rc = find_state(err);
	if (rc < 0)
		return rc;
	struct stat st;
	if (cpr.state_fd < 0 || fstat(cpr.state_fd, &st) < 0 || st.st_size <= 0 ||
	    (uint64_t)st.st_size > CPR_MAX_BYTES)
		return tern_errorf(err, -EBADF, "$%s does not name a live-update state", ENV_STATE);
	cpr.blob_len = (size_t)st.st_size;
	void *p = mmap(NULL, cpr.blob_len, PROT_READ, MAP_PRIVATE, cpr.state_fd, 0);
	if (p == MAP_FAILED)
		return tern_errorf(err, -errno, "reading the state: %s", strerror(errno));
	cpr.blob = p;
	r->cpr_received_ns = cpr_mono_ns();
	r->cpr_memslot_ns = r->vm.kvm.memslot_ns;
	rc = cpr_take_state(r, err);
	if (rc == 0)
		rc = tern_fdstore_walk(r->fds, check_open, err);
	if (rc == 0)
		cpr_fault_point();
	return rc;
}

int cpr_exec_take(struct tern_error *err)
{
	if (cpr.guardian_fd < 0)
		return 0; /* the guardian's own fallback: the guest is ours already */
	int rc = tern_cpr_guard_take(cpr.guardian_fd, GUARDIAN_ANSWER_MS);
	if (rc < 0) {
		cpr.take_refused = 1;
		return tern_errorf(err, rc, rc == -ECANCELED
				   ? "too late: x-cpr-timeout passed, the guardian resumes the guest"
				   : "the live update's guardian did not let this tern take the guest");
	}
	cpr.taken = 1;
	close(cpr.guardian_fd);
	cpr.guardian_fd = -1;
	return 0;
}

/* What the old program left to tear down after a cpr-exec. */
struct leftovers {
	int vm_fd;
	struct tern_mm_keeper mm;
};

static void *retire_thread(void *opaque)
{
	struct leftovers *l = opaque;
	if (l->vm_fd >= 0)
		close(l->vm_fd);
	tern_mm_keeper_release(&l->mm);
	free(l);
	return NULL;
}

/* The old VM goes away (KVM frees its memslots and devices), and then the
 * old address space (every page the guest touched through it, kept by the
 * guardian), while the guest already runs in the new one. */
static void retire_in_background(int vm_fd, struct tern_mm_keeper mm)
{
	/* Passed through exec to get here; a later update must not pass them on. */
	if (vm_fd >= 0)
		fcntl(vm_fd, F_SETFD, FD_CLOEXEC);
	if (mm.pidfd >= 0)
		fcntl(mm.pidfd, F_SETFD, FD_CLOEXEC);
	struct leftovers *l = malloc(sizeof *l);
	if (l == NULL) {
		if (vm_fd >= 0)
			close(vm_fd);
		tern_mm_keeper_release(&mm);
		return;
	}
	*l = (struct leftovers){ .vm_fd = vm_fd, .mm = mm };
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, retire_thread, l) != 0)
		retire_thread(l);
	pthread_attr_destroy(&attr);
}

void cpr_exec_finish(void)
{
	if (cpr.old_vm_fd >= 0 || cpr.old_mm.pidfd >= 0)
		retire_in_background(cpr.old_vm_fd, cpr.old_mm);
	cpr.old_vm_fd = -1;
	cpr.old_mm = (struct tern_mm_keeper){ .pidfd = -1 };
	munmap(cpr.blob, cpr.blob_len);
	close(cpr.state_fd);
	if (cpr.previous_fd >= 0)
		close(cpr.previous_fd);
	forget_update_env();
	cpr.blob = NULL;
	cpr.state_fd = cpr.previous_fd = -1;
}

void cpr_exec_fall_back(struct runner *r, const struct tern_error *err)
{
	if (cpr.take_refused) /* the guardian stops this process and resumes the guest */
		_exit(TERN_EXIT_START_FAILED);
	if (r->cpr_fallback || cpr.previous_fd < 0 || cpr.state_fd < 0)
		return; /* the previous binary itself failed, or nothing to run */
	if (cpr.taken) {
		/* The guardian is gone but the guest has not run: the state is
		 * still good, passed straight to the previous binary. */
		fcntl(cpr.state_fd, F_SETFD, 0);
		unsetenv(ENV_GUARDIAN);
		cpr_set_env_fd(ENV_STATE, cpr.state_fd);
	}
	/* Back to the binary that saved the state: it knows how to load it.  It
	 * asks the guardian (passed on) for the state again. */
	fprintf(stderr, "tern: the live update failed: %s; going back to the previous binary\n",
		err->msg);
	setenv(ENV_FALLBACK, err->msg, 1);
	char *argv[] = { "tern", "run", NULL };
	fexecve(cpr.previous_fd, argv, environ);
	fprintf(stderr, "tern: cannot run the previous binary: %s\n", strerror(errno));
}
